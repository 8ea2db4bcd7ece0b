"""Replay: a window's open dead letters sent again, once their cause is fixed."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from importer_dagster.core.contacts import EncodedBatch, post_batch
from importer_dagster.core.dead_letters import DeadLetter, DeadLetters
from importer_dagster.core.http import ApiClient
from importer_dagster.core.transform import member_id_of, transform_members
from importer_dagster.core.windows import partition_key


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

    Only the dead letters are sent, never the whole window. Their batches are keyed by this run:
    a key without it would get a previous replay's stored answer back, and the letters would never
    get through. Members that failed validation are validated again by today's transform; those
    that pass are exported. Every letter that gets through is marked resolved by this run; the
    rest keep the run that first failed them and name this replay as their latest.
    """
    rows = dead_letters.rows(list_key=list_key, window=window_key)
    if not rows:
        return ReplayStats()
    account_id = rows[0].account
    first_failed_by = {row.member_id: row.run_id for row in rows}
    stats = ReplayStats(replayed=len(rows))
    records, still_invalid = [], []
    for row in rows:
        if row.stage == "transform":
            result = transform_members([orjson.loads(row.payload)])
            records += result.records
            still_invalid += result.dead_letters
        else:
            records.append(orjson.loads(row.payload))
    rejections: list[DeadLetter] = []
    posted: list[str] = []
    scope = f"replay\n{run_id}\n{partition_key(list_key, window_key)}\n"
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        answer = post_batch(client, contacts_account, EncodedBatch.of(batch), scope=scope, account=account_id)
        posted += [member_id_of(record) for record in batch]
        rejections += answer.rejections
        stats.exported += answer.accepted
    dead_letters.resolve(list_key, posted, run_id, up_to_window=window_key)
    for stage, letters in (("transform", still_invalid), ("export", rejections)):
        for original_run, group in _by_original_run(letters, first_failed_by).items():
            dead_letters.record(
                account=account_id, list_key=list_key, window=window_key, stage=stage, run_id=original_run,
                letters=group, replay_run_id=run_id,
            )
    stats.still_dead = len(still_invalid) + len(rejections)
    return stats


def _by_original_run(letters: list[DeadLetter], first_failed_by: dict[str, str]) -> dict[str, list[DeadLetter]]:
    grouped: dict[str, list[DeadLetter]] = {}
    for letter in letters:
        grouped.setdefault(first_failed_by[letter.member_id], []).append(letter)
    return grouped
