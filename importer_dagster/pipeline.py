"""The three steps of an import, free of Dagster: fetch a window, transform it, export it.

The assets are thin wrappers around these functions. Each works one (list, window) at a time and
streams Parquet parts, so memory is bounded by the page and batch size, never by the window.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from importer_dagster.concurrency import ordered_parallel_map
from importer_dagster.http import ApiClient, FatalHttpError, dumps_body
from importer_dagster.mailchimp import MemberScan, ScanStats, parse_last_changed
from importer_dagster.partitions import ListWindow
from importer_dagster.storage import DeadLetter, DeadLetters, WindowFiles
from importer_dagster.transform import frame_to_records, transform_members

SOURCE = "mailchimp_contacts"
RECORDS = "contact_records"
CHUNK_ROWS = 10_000
PROGRESS_EVERY_S = 10.0


class _OrderedChunks:
    """Buffers one window's members and writes them in (last_changed, id) order.

    Mailchimp does not promise an order among members changed in the same second. Sorting each
    tie makes a window's files, and so its export batches and their idempotency keys, depend only
    on the window's content. Members arrive in ascending `last_changed`, so only the newest tie
    is ever held back; memory stays at one chunk plus one tie.
    """

    def __init__(self, write: Callable[[pd.DataFrame], None]):
        self._write = write
        self._rows: list[tuple[datetime, str, str]] = []
        self._undated: list[tuple[str, str]] = []
        self.count = 0

    def add(self, member: dict[str, Any], changed: datetime | None) -> None:
        self.count += 1
        encoded = json.dumps(member, ensure_ascii=False)
        member_id = str(member.get("id"))
        if changed is None:
            self._undated.append((member_id, encoded))
        else:
            self._rows.append((changed, member_id, encoded))
        if len(self._rows) >= CHUNK_ROWS:
            newest = max(row[0] for row in self._rows)
            settled = sorted(row for row in self._rows if row[0] < newest)
            if settled:
                self._rows = [row for row in self._rows if row[0] == newest]
                self._flush(settled)

    def _flush(self, rows: Sequence[tuple[datetime | None, str, str]]) -> None:
        self._write(
            pd.DataFrame(
                {
                    "member_id": [row[1] for row in rows],
                    "last_changed": [row[0].isoformat() if row[0] else None for row in rows],
                    "member": [row[2] for row in rows],
                }
            )
        )

    def close(self) -> None:
        self._flush(sorted(self._rows))
        self._flush([(None, member_id, encoded) for member_id, encoded in sorted(self._undated)])
        self._rows, self._undated = [], []


@dataclass
class FetchStats:
    fetched: int
    pages: int
    duration_s: float


def _progress_logger(log: logging.Logger, label: str) -> Callable[[ScanStats], None]:
    started = time.monotonic()
    last = [0.0]

    def report(stats: ScanStats) -> None:
        now = time.monotonic()
        if stats.pages > 1 and now - last[0] < PROGRESS_EVERY_S:
            return
        last[0] = now
        elapsed = max(now - started, 1e-6)
        rate = stats.rows / elapsed
        remaining = max(stats.expected_pages - stats.pages, 0)
        eta = remaining * elapsed / stats.pages if stats.pages else 0.0
        log.info(
            f"{label}: page {stats.pages}/{max(stats.expected_pages, stats.pages)}, "
            f"{stats.rows} members, {rate:.0f}/s, ETA {eta:.0f} s"
        )

    return report


def fetch_windows(
    client: ApiClient,
    windows: Sequence[ListWindow],
    files: WindowFiles,
    *,
    page_size: int,
    parallelism: int,
    log: logging.Logger,
) -> dict[str, FetchStats]:
    """One Mailchimp sweep over consecutive windows of one list, split into a file per window.

    Spanning several windows in one sweep is what makes a list's history (a full sync followed by
    hundreds of mostly empty hours) cost one scan instead of hundreds.
    """
    windows = sorted(windows, key=lambda window: window.end)
    first, last = windows[0], windows[-1]
    started = time.monotonic()
    ends = [window.end for window in windows]
    writers = [files.writer(SOURCE, window.list_key, window.window_key) for window in windows]
    buffers = [_OrderedChunks(writer.write) for writer in writers]
    label = f"{first.list_key} windows {first.window_key}..{last.window_key}" if len(windows) > 1 else str(first)
    scan = MemberScan(
        client,
        first.list_id,
        first.start,
        last.end,
        page_size=page_size,
        parallelism=parallelism,
        on_page=_progress_logger(log, label),
    )
    try:
        for members in scan.batches():
            for member in members:
                changed = parse_last_changed(member.get("last_changed"))
                if changed is None:
                    buffers[0].add(member, None)
                    continue
                index = bisect.bisect_right(ends, changed)
                if index < len(windows) and windows[index].contains(changed):
                    buffers[index].add(member, changed)
        duration = time.monotonic() - started
        stats = {}
        for window, writer, buffer in zip(windows, writers, buffers):
            buffer.close()
            stats[window.window_key] = FetchStats(buffer.count, scan.stats.pages, duration)
            writer.commit(
                {
                    "fetched": buffer.count,
                    "pages": scan.stats.pages,
                    "repair_pages": scan.stats.repair_pages,
                    "duration_s": duration,
                }
            )
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    log.info(f"{label}: fetched {scan.stats.rows} members in {scan.stats.pages} pages ({duration:.1f} s)")
    return stats


@dataclass
class TransformStats:
    transformed: int
    invalid: int
    duplicates: int


def _count_duplicates(hashes: list[np.ndarray]) -> int:
    """8 bytes per record instead of a set of a million strings."""
    if not hashes:
        return 0
    ordered = np.sort(np.concatenate(hashes))
    return int(np.count_nonzero(ordered[1:] == ordered[:-1]))


def transform_window(
    files: WindowFiles, dead_letters: DeadLetters, window: ListWindow, run_id: str
) -> TransformStats:
    writer = files.writer(RECORDS, window.list_key, window.window_key)
    transformed = invalid = 0
    hashes = []
    try:
        for frame in files.frames(SOURCE, window.list_key, window.window_key):
            result = transform_members(json.loads(encoded) for encoded in frame["member"])
            writer.write(result.records)
            hashes.append(pd.util.hash_pandas_object(result.records["external_id"], index=False).to_numpy())
            dead_letters.record(
                account=window.account_id,
                list_key=window.list_key,
                window=window.window_key,
                stage="transform",
                run_id=run_id,
                letters=result.dead_letters,
            )
            transformed += len(result.records)
            invalid += len(result.dead_letters)
        duplicates = _count_duplicates(hashes)
        writer.commit({"transformed": transformed, "invalid": invalid, "duplicates": duplicates})
    except BaseException:
        writer.abort()
        raise
    return TransformStats(transformed, invalid, duplicates)


def idempotency_key(window: ListWindow, body: bytes) -> str:
    """Same list, window and batch content → same key, so a replayed POST imports nothing twice."""
    digest = hashlib.sha256(f"{window.partition_key}\n".encode() + body)
    return digest.hexdigest()


def _batches(chunks: Iterator[list[dict[str, Any]]], size: int) -> Iterator[list[dict[str, Any]]]:
    pending: list[dict[str, Any]] = []
    for chunk in chunks:
        pending.extend(chunk)
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending


@dataclass
class ExportStats:
    batches: int = 0
    exported: int = 0
    rejected: int = 0
    rejections: list[DeadLetter] = field(default_factory=list)


def export_window(
    client: ApiClient,
    contacts_account: str,
    files: WindowFiles,
    dead_letters: DeadLetters,
    window: ListWindow,
    *,
    run_id: str,
    batch_size: int,
    parallelism: int,
    log: logging.Logger,
) -> ExportStats:
    path = f"/v1/accounts/{contacts_account}/contacts/import"
    previously_dead = dead_letters.open_member_ids(window.list_key, window.window_key)
    stats = ExportStats()

    def post(batch: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        body = dumps_body({"records": batch})
        answer = client.request_json(
            "POST", path, body=body, headers={"Idempotency-Key": idempotency_key(window, body)}
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("accepted"), int):
            raise FatalHttpError(f"Contacts API: POST {path} answered an unexpected body")
        return batch, answer

    chunks = files.rows(RECORDS, window.list_key, window.window_key)
    for batch, answer in ordered_parallel_map(post, _batches(chunks, batch_size), parallelism, "contacts-import"):
        rejected = answer.get("rejected") or []
        rejected_ids = set()
        for rejection in rejected:
            record = batch[int(rejection["index"])]
            member_id = record["external_id"].split(":", 1)[-1]
            rejected_ids.add(member_id)
            stats.rejections.append(
                DeadLetter(
                    member_id=member_id,
                    external_id=record["external_id"],
                    reason=f"rejected by the Contacts API: {rejection.get('reason', 'no reason given')}",
                    payload=json.dumps(record, ensure_ascii=False),
                )
            )
        stats.batches += 1
        stats.exported += answer["accepted"]
        stats.rejected += len(rejected)
        if previously_dead:
            exported_ids = {record["external_id"].split(":", 1)[-1] for record in batch} - rejected_ids
            dead_letters.resolve(window.list_key, window.window_key, exported_ids & previously_dead, run_id)
    dead_letters.record(
        account=window.account_id,
        list_key=window.list_key,
        window=window.window_key,
        stage="export",
        run_id=run_id,
        letters=stats.rejections,
    )
    log.info(f"{window}: exported {stats.exported}, rejected {stats.rejected} in {stats.batches} batches")
    return stats


@dataclass
class ReplayStats:
    replayed: int = 0
    exported: int = 0
    still_dead: int = 0


def replay_dead_letters(
    client: ApiClient,
    contacts_account: str,
    dead_letters: DeadLetters,
    list_key: str,
    window_key: str,
    *,
    run_id: str,
    batch_size: int,
) -> ReplayStats:
    """Send a window's open dead letters again, after their cause was fixed.

    Only the dead letters are sent, never the whole window: a batch of other records would carry
    the idempotency key of the original and get the original answer back. Members that failed
    validation are validated again by today's transform; those that pass are exported, the rest
    keep their row with the new reason. Every letter that gets through is marked resolved by this
    run, so the history of what went wrong stays.
    """
    rows = dead_letters.rows(list_key=list_key, window=window_key)
    account_id = rows[0].account if rows else ""
    stats = ReplayStats(replayed=len(rows))
    records, still_invalid = [], []
    for row in rows:
        if row.stage == "transform":
            result = transform_members([json.loads(row.payload)])
            records += frame_to_records(result.records)
            still_invalid += result.dead_letters
        else:
            records.append(json.loads(row.payload))
    path = f"/v1/accounts/{contacts_account}/contacts/import"
    rejections: list[DeadLetter] = []
    posted: list[str] = []
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        body = dumps_body({"records": batch})
        key = hashlib.sha256(f"replay\n{list_key}|{window_key}\n".encode() + body).hexdigest()
        answer = client.request_json("POST", path, body=body, headers={"Idempotency-Key": key})
        rejected = {int(item["index"]): item.get("reason", "no reason given") for item in answer.get("rejected") or []}
        for index, record in enumerate(batch):
            member_id = record["external_id"].split(":", 1)[-1]
            posted.append(member_id)
            if index in rejected:
                rejections.append(
                    DeadLetter(member_id, f"rejected by the Contacts API: {rejected[index]}",
                               json.dumps(record, ensure_ascii=False), record["external_id"])
                )
        stats.exported += len(batch) - len(rejected)
    dead_letters.resolve(list_key, window_key, posted, run_id)
    for stage, letters in (("transform", still_invalid), ("export", rejections)):
        dead_letters.record(
            account=account_id, list_key=list_key, window=window_key, stage=stage, run_id=run_id, letters=letters
        )
    stats.still_dead = len(still_invalid) + len(rejections)
    return stats
