"""The three steps of an import, free of Dagster: fetch a window, transform it, export it.

The assets are thin wrappers around these functions. Work streams in chunks of a window, so
memory is bounded by the chunk and the batches in flight, never by the window.

When a run does all three steps, they run as one stream (`sweep_windows`): each settled chunk of
members is written, transformed and handed to the exporter while Mailchimp is still paging. A full
sync then costs about as long as its download, because transforming and exporting happen in the
time the scan spends waiting on Mailchimp. A run over one step alone (exporting again from stored
records, say) reads the previous step's files instead (`transform_window`, `export_window`).
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import itertools
import logging
import operator
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from importer_dagster.http import ApiClient, FatalHttpError, HttpError, dumps_body
from importer_dagster.mailchimp import MemberScan, ScanStats, parse_last_changed
from importer_dagster.partitions import ListWindow
from importer_dagster.storage import DeadLetter, DeadLetters, SentRecords, WindowFiles, WindowWriter
from importer_dagster.transform import transform_members

SOURCE = "mailchimp_contacts"
RECORDS = "contact_records"
CHUNK_ROWS = 10_000
MAX_UNSETTLED_WINDOWS = 4
"""Windows the sweep has passed whose last batches may still be in flight: the scan goes on
without waiting for them, and memory holds at most this many windows' batches."""
PROGRESS_EVERY_S = 10.0

Member = dict[str, Any]
Settled = tuple[datetime | None, str, Member]
_ORDER = operator.itemgetter(0, 1)


class _OrderedChunks:
    """Buffers one window's members and releases them in (last_changed, id) order.

    Mailchimp does not promise an order among members changed in the same second. Sorting each
    tie makes a window's files, and so its export batches and their idempotency keys, depend only
    on the window's content. Members arrive in ascending `last_changed`, so only the newest tie
    is ever held back; memory stays at one chunk plus one tie.
    """

    def __init__(self, release: Callable[[list[Settled]], None]):
        self._release = release
        self._rows: list[Settled] = []
        self._undated: list[Settled] = []
        self.count = 0

    def add(self, member: Member, changed: datetime | None) -> None:
        self.count += 1
        row = (changed, str(member.get("id")), member)
        if changed is None:
            self._undated.append(row)
            return
        self._rows.append(row)
        if len(self._rows) >= CHUNK_ROWS:
            newest = max(row[0] for row in self._rows)
            settled = [row for row in self._rows if row[0] < newest]
            if settled:
                self._rows = [row for row in self._rows if row[0] == newest]
                self._release(sorted(settled, key=_ORDER))

    def close(self) -> None:
        if self._rows:
            self._release(sorted(self._rows, key=_ORDER))
        if self._undated:
            self._release(sorted(self._undated, key=_ORDER))
        self._rows, self._undated = [], []


def source_table(rows: Sequence[Settled]) -> pa.Table:
    """The member is kept whole, as Mailchimp sent it, so a dead letter can always show it."""
    return pa.table(
        {
            "member_id": pa.array([row[1] for row in rows], pa.string()),
            "last_changed": pa.array([row[0].isoformat() if row[0] else None for row in rows], pa.string()),
            "member": pa.array([orjson.dumps(row[2]) for row in rows], pa.string()),
        }
    )


@dataclass
class TransformStats:
    transformed: int = 0
    invalid: int = 0
    duplicates: int = 0


class RecordsStage:
    """Transforms a window chunk by chunk, writes the records, and keeps what the checks count."""

    def __init__(self, files: WindowFiles, dead_letters: DeadLetters, window: ListWindow, run_id: str):
        self.window = window
        self.run_id = run_id
        self.dead_letters = dead_letters
        self.writer = files.writer(RECORDS, window.list_key, window.window_key)
        self.stats = TransformStats()
        self._hashes: list[np.ndarray] = []

    def add(self, members: list[Member]) -> list[dict[str, Any]]:
        result = transform_members(members)
        self.writer.write(result.table())
        self._hashes.append(np.fromiter((hash(r["external_id"]) for r in result.records), np.int64, len(result.records)))
        self.dead_letters.record(
            account=self.window.account_id,
            list_key=self.window.list_key,
            window=self.window.window_key,
            stage="transform",
            run_id=self.run_id,
            letters=result.dead_letters,
        )
        self.stats.transformed += len(result.records)
        self.stats.invalid += len(result.dead_letters)
        return result.records

    def commit(self) -> TransformStats:
        self.stats.duplicates = _count_duplicates(self._hashes)
        self.writer.commit(
            {"transformed": self.stats.transformed, "invalid": self.stats.invalid, "duplicates": self.stats.duplicates}
        )
        return self.stats


def _count_duplicates(hashes: list[np.ndarray]) -> int:
    """8 bytes per record instead of a set of a million strings."""
    if not hashes:
        return 0
    ordered = np.sort(np.concatenate(hashes))
    return int(np.count_nonzero(ordered[1:] == ordered[:-1]))


def idempotency_key(window: ListWindow, body: bytes, salt: str = "") -> str:
    """Same list, window, batch content and salt → same key, so a replayed POST imports nothing twice."""
    digest = hashlib.sha256(f"{window.partition_key}\n{salt}\n".encode() + body)
    return digest.hexdigest()


def record_hash(record: dict[str, Any]) -> str:
    """The record as the Contacts API keeps it, without `changed_at`.

    Mailchimp moves `last_changed` for edits the API never sees (stats, notes, tags that are not
    exported); leaving the timestamp out is what lets those contacts be skipped.
    """
    content = {name: value for name, value in record.items() if name != "changed_at"}
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def member_id_of(record: dict[str, Any]) -> str:
    return record["external_id"].split(":", 1)[-1]


@dataclass(frozen=True)
class ChangeDetection:
    """Send only records that changed since the API last accepted them, or that it has not seen lately.

    Every accepted record is sent again once `resend_after` has passed, which heals a target that
    lost data. The batches' idempotency keys are salted with the current `resend_after` period (or,
    when `force_run_id` is set, with the run), so a deliberate re-send is applied rather than
    answered from the API's memory, while a retry within the period still replays.
    """

    sent: SentRecords
    resend_after: timedelta
    now: datetime
    force_run_id: str | None = None

    @property
    def salt(self) -> str:
        if self.force_run_id:
            return f"force:{self.force_run_id}"
        return f"period:{int(self.now.timestamp() // self.resend_after.total_seconds())}"

    def changed(self, list_key: str, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.force_run_id:
            return list(records)
        ids = [member_id_of(record) for record in records]
        known = self.sent.lookup(list_key, ids)
        cutoff = self.now - self.resend_after
        changed = []
        for record, member_id in zip(records, ids, strict=True):
            entry = known.get(member_id)
            if entry is None or entry.sent_at < cutoff or entry.record_hash != record_hash(record):
                changed.append(record)
        return changed


@dataclass
class ExportStats:
    batches: int = 0
    exported: int = 0
    skipped: int = 0
    """Unchanged since the API last accepted them: not sent."""
    rejected: int = 0
    rejections: list[DeadLetter] = field(default_factory=list)


class Exporter:
    """Posts one window's records in batches as they arrive, several batches in flight.

    Batches are cut from the record sequence alone, whatever the chunks it arrived in, so the
    same window always makes the same batches and the same idempotency keys: a window exported
    again, streamed or from its files, is answered from the API's memory instead of imported twice.
    Answers are settled in order, and at most two batches per connection wait in memory.
    """

    def __init__(
        self,
        client: ApiClient,
        contacts_account: str,
        dead_letters: DeadLetters,
        window: ListWindow,
        *,
        previously_dead: set[str],
        run_id: str,
        batch_size: int,
        parallelism: int,
        changes: ChangeDetection | None = None,
    ):
        self.client = client
        self.changes = changes
        self.path = f"/v1/accounts/{contacts_account}/contacts/import"
        self.dead_letters = dead_letters
        self.window = window
        self.run_id = run_id
        self.batch_size = batch_size
        self.parallelism = max(1, parallelism)
        self.previously_dead = previously_dead
        """Members of this window still dead-lettered: each one that gets through now is resolved."""
        self.stats = ExportStats()
        self.consumed = 0
        """Records taken so far, sent or skipped; an export resumed from the files starts after them."""
        self.sent = 0
        self._pending: list[dict[str, Any]] = []
        self._in_flight: deque[Future] = deque()
        self._pool: ThreadPoolExecutor | None = None

    def add(self, records: Sequence[dict[str, Any]]) -> None:
        self.consumed += len(records)
        if self.changes is not None:
            changed = self.changes.changed(self.window.list_key, records)
            self.stats.skipped += len(records) - len(changed)
            records = changed
        self._pending.extend(records)
        while len(self._pending) >= self.batch_size:
            self._submit(self._pending[: self.batch_size])
            del self._pending[: self.batch_size]

    def flush(self) -> None:
        """Sends the last, short batch without waiting for any answer."""
        if self._pending:
            self._submit(self._pending)
            self._pending = []

    @property
    def idle(self) -> bool:
        return all(future.done() for future in self._in_flight)

    def finish(self) -> ExportStats:
        self.flush()
        try:
            while self._in_flight:
                self._settle(self._in_flight.popleft())
        finally:
            self.close()
        self.dead_letters.record(
            account=self.window.account_id,
            list_key=self.window.list_key,
            window=self.window.window_key,
            stage="export",
            run_id=self.run_id,
            letters=self.stats.rejections,
        )
        return self.stats

    def close(self) -> None:
        """Waits for what is already sent, so no answer arrives after the step has moved on."""
        for future in self._in_flight:
            future.cancel()
        if self._pool:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _submit(self, batch: list[dict[str, Any]]) -> None:
        self.sent += len(batch)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.parallelism, thread_name_prefix="contacts-import")
        self._in_flight.append(self._pool.submit(self._post, batch))
        while len(self._in_flight) > 2 * self.parallelism:
            self._settle(self._in_flight.popleft())

    def _post(self, batch: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        body = dumps_body({"records": batch})
        answer = self.client.request_json(
            "POST",
            self.path,
            body=body,
            headers={"Idempotency-Key": idempotency_key(self.window, body, self.changes.salt if self.changes else "")},
            account=self.window.account_id,
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("accepted"), int):
            raise FatalHttpError(f"Contacts API: POST {self.path} answered an unexpected body")
        return batch, answer

    def _settle(self, future: Future) -> None:
        batch, answer = future.result()
        rejected = answer.get("rejected") or []
        rejected_ids = set()
        for rejection in rejected:
            record = batch[int(rejection["index"])]
            member_id = record["external_id"].split(":", 1)[-1]
            rejected_ids.add(member_id)
            self.stats.rejections.append(
                DeadLetter(
                    member_id=member_id,
                    external_id=record["external_id"],
                    reason=f"rejected by the Contacts API: {rejection.get('reason', 'no reason given')}",
                    payload=orjson.dumps(record).decode(),
                )
            )
        self.stats.batches += 1
        self.stats.exported += answer["accepted"]
        self.stats.rejected += len(rejected)
        if self.changes is not None:
            accepted = [record for record in batch if member_id_of(record) not in rejected_ids]
            self.changes.sent.remember(
                self.window.list_key,
                [(member_id_of(record), record_hash(record), record["changed_at"]) for record in accepted],
                datetime.now(timezone.utc),
            )
        if self.previously_dead:
            exported_ids = {record["external_id"].split(":", 1)[-1] for record in batch} - rejected_ids
            self.dead_letters.resolve(self.window.list_key, self.window.window_key, exported_ids & self.previously_dead, self.run_id)


@dataclass
class FetchStats:
    fetched: int
    pages: int
    repair_pages: int
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


class WindowStream:
    """What happens to one window's members as the sweep releases them, chunk by chunk.

    Always: the chunk is written as the source. With a records stage: it is transformed too. With
    an exporter: the valid records are sent at once, but only while the share of invalid members
    seen so far stays within `max_invalid_share`. The first chunk holds ten thousand members or the
    whole window, so a window that is broken throughout sends nothing; a window whose share crosses
    the limit later stops sending at that chunk. Whether the window as a whole is blocked is the
    caller's decision, on the final counts; if it is not, `resume_export` sends the rest from the
    files.
    """

    def __init__(
        self,
        window: ListWindow,
        files: WindowFiles,
        *,
        records: RecordsStage | None = None,
        exporter: Exporter | None = None,
        max_invalid_share: float = 1.0,
    ):
        self.window = window
        self.files = files
        self.source: WindowWriter = files.writer(SOURCE, window.list_key, window.window_key)
        self.records = records
        self.exporter = exporter
        self.max_invalid_share = max_invalid_share
        self.export_halted = False
        self.export_error: HttpError | None = None
        self.export_stats: ExportStats | None = None
        self.buffer = _OrderedChunks(self._release)

    def _release(self, rows: list[Settled]) -> None:
        self.source.write(source_table(rows))
        if self.records is None:
            return
        valid = self.records.add([row[2] for row in rows])
        if not self._exporting():
            return
        if self.records.stats.invalid > self.max_invalid_share * self.source.rows:
            self.export_halted = True
            return
        self._guarded(self.exporter.add, valid)

    def _exporting(self) -> bool:
        return self.exporter is not None and not (self.export_halted or self.export_error or self.export_stats)

    def _guarded(self, step: Callable[..., Any], *args: Any) -> Any:
        """A failed export fails this window only; the sweep goes on for the others."""
        try:
            return step(*args)
        except HttpError as error:
            self.export_error = error
            self.exporter.close()
            return None

    def complete(self) -> None:
        """The sweep has passed this window: release what is held and send the last batch.

        Members without a usable `last_changed` can still arrive later (they belong to the first
        window); they always fail validation, so they only ever add dead letters.
        """
        self.buffer.close()
        if self._exporting():
            self._guarded(self.exporter.flush)

    @property
    def settled(self) -> bool:
        """Nothing left to wait for: settling now would not block."""
        return not self._exporting() or self.exporter.idle

    def settle(self) -> None:
        if self._exporting():
            self.export_stats = self._guarded(self.exporter.finish)

    def finish_export(self) -> ExportStats | None:
        """After the files are committed: the export's outcome, or None if it failed (`export_error`)."""
        if self.export_halted and not self.export_error:
            self._guarded(self._resume_from_files)
            if not self.export_error:
                self.export_stats = self._guarded(self.exporter.finish)
        self.settle()
        return None if self.export_error else self.export_stats

    def _resume_from_files(self) -> None:
        rows = itertools.chain.from_iterable(self.files.rows(RECORDS, self.window.list_key, self.window.window_key))
        for chunk in _chunks(itertools.islice(rows, self.exporter.consumed, None), self.exporter.batch_size):
            self.exporter.add(chunk)

    def abort(self) -> None:
        self.source.abort()
        if self.records:
            self.records.writer.abort()
        if self.exporter:
            self.exporter.close()


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


@contextmanager
def _rare_garbage_collection() -> Iterator[None]:
    """Members, records and batches hold no reference cycles: reference counting frees them.

    Left at its defaults, Python's cycle collector runs a full pass every few pages over every
    object in the process, Dagster's included; over a million members that was 40% of the
    importer's CPU. Existing objects are set aside (`gc.freeze`) and passes are made rare for the
    length of the sweep, then both are restored.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def sweep_windows(
    client: ApiClient,
    streams: Sequence[WindowStream],
    *,
    page_size: int,
    parallelism: int,
    log: logging.Logger,
) -> dict[str, FetchStats]:
    """One Mailchimp sweep over consecutive windows of one list, each window to its own stream.

    Spanning several windows in one sweep is what makes a list's history (a full sync followed by
    hundreds of mostly empty hours) cost one scan instead of hundreds. Members come in ascending
    `last_changed`, so a window is complete as soon as the scan passes its end: its last batch
    goes out then, and its answers are settled without holding up the scan. The files are committed only when the
    whole sweep succeeded.
    """
    streams = sorted(streams, key=lambda stream: stream.window.end)
    windows = [stream.window for stream in streams]
    first, last = windows[0], windows[-1]
    started = time.monotonic()
    ends = [window.end for window in windows]
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
    current = 0
    settling: deque[WindowStream] = deque()

    def passed(stream: WindowStream) -> None:
        stream.complete()
        settling.append(stream)
        while settling and (len(settling) > MAX_UNSETTLED_WINDOWS or settling[0].settled):
            settling.popleft().settle()

    try:
        with _rare_garbage_collection():
            for members in scan.batches():
                for member in members:
                    changed = parse_last_changed(member.get("last_changed"))
                    if changed is None:
                        streams[0].buffer.add(member, None)
                        continue
                    index = bisect.bisect_right(ends, changed)
                    while current < min(index, len(streams)):
                        passed(streams[current])
                        current += 1
                    if index < len(windows) and windows[index].contains(changed):
                        streams[index].buffer.add(member, changed)
            for stream in streams:
                stream.complete()
                stream.settle()
        duration = time.monotonic() - started
        stats = {}
        for stream in streams:
            fetched = stream.buffer.count
            stats[stream.window.window_key] = FetchStats(fetched, scan.stats.pages, scan.stats.repair_pages, duration)
            manifest = {"fetched": fetched, "pages": scan.stats.pages, "repair_pages": scan.stats.repair_pages,
                        "duration_s": duration}
            stream.source.commit(manifest)
            if stream.records:
                stream.records.commit()
    except BaseException:
        for stream in streams:
            stream.abort()
        raise
    log.info(f"{label}: fetched {scan.stats.rows} members in {scan.stats.pages} pages ({duration:.1f} s)")
    return stats


def transform_window(
    files: WindowFiles, dead_letters: DeadLetters, window: ListWindow, run_id: str
) -> TransformStats:
    """Transform a window fetched by an earlier run, from its files."""
    stage = RecordsStage(files, dead_letters, window, run_id)
    try:
        for part in files.column(SOURCE, window.list_key, window.window_key, "member"):
            stage.add([orjson.loads(encoded) for encoded in part])
        return stage.commit()
    except BaseException:
        stage.writer.abort()
        raise


def export_window(exporter: Exporter, files: WindowFiles, log: logging.Logger) -> ExportStats:
    """Export a window transformed by an earlier run, from its files."""
    window = exporter.window
    try:
        for rows in files.rows(RECORDS, window.list_key, window.window_key):
            exporter.add(rows)
        stats = exporter.finish()
    finally:
        exporter.close()
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
            result = transform_members([orjson.loads(row.payload)])
            records += result.records
            still_invalid += result.dead_letters
        else:
            records.append(orjson.loads(row.payload))
    path = f"/v1/accounts/{contacts_account}/contacts/import"
    rejections: list[DeadLetter] = []
    posted: list[str] = []
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        body = dumps_body({"records": batch})
        key = hashlib.sha256(f"replay\n{list_key}|{window_key}\n".encode() + body).hexdigest()
        answer = client.request_json("POST", path, body=body, headers={"Idempotency-Key": key}, account=account_id)
        rejected = {int(item["index"]): item.get("reason", "no reason given") for item in answer.get("rejected") or []}
        for index, record in enumerate(batch):
            member_id = record["external_id"].split(":", 1)[-1]
            posted.append(member_id)
            if index in rejected:
                rejections.append(
                    DeadLetter(member_id, f"rejected by the Contacts API: {rejected[index]}",
                               orjson.dumps(record).decode(), record["external_id"])
                )
        stats.exported += len(batch) - len(rejected)
    dead_letters.resolve(list_key, window_key, posted, run_id)
    for stage, letters in (("transform", still_invalid), ("export", rejections)):
        dead_letters.record(
            account=account_id, list_key=list_key, window=window_key, stage=stage, run_id=run_id, letters=letters
        )
    stats.still_dead = len(still_invalid) + len(rejections)
    return stats
