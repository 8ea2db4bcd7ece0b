"""Change detection: send only what the Contacts API has not already accepted unchanged.

Mailchimp moves `last_changed` for edits the API never sees (stats, notes, tags that are not
exported). The store keeps, per (list, contact), a hash of the record the API last accepted; a
record whose hash is unchanged is skipped, until `resend_after` has passed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import sqlalchemy as sa

from importer_dagster.core.state import aware, insert_for, sent_records_table
from importer_dagster.core.transform import member_id_of


@dataclass(frozen=True)
class SentRecord:
    record_hash: str
    sent_at: datetime


class SentRecords:
    """What the Contacts API last accepted for each contact, as a hash of the record.

    Written only after the API has answered a batch, and only for the records it accepted, so a
    crash before the write costs a re-send and a rejected record is always tried again. Upserts are
    per row and never let an older `changed_at` overwrite a newer one, so runs over different
    windows of the same list can write at the same time.
    """

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def lookup(self, list_key: str, member_ids: Sequence[str]) -> dict[str, SentRecord]:
        table = sent_records_table
        found: dict[str, SentRecord] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(member_ids), 500):
                rows = connection.execute(
                    sa.select(table.c.member_id, table.c.record_hash, table.c.sent_at).where(
                        table.c.list_key == list_key, table.c.member_id.in_(member_ids[start : start + 500])
                    )
                )
                for member_id, record_hash, sent_at in rows:
                    found[member_id] = SentRecord(record_hash, aware(sent_at))
        return found

    def remember(self, list_key: str, entries: Sequence[tuple[str, str, str]], sent_at: datetime) -> None:
        """(member id, record hash, changed_at) of each record the API accepted."""
        if not entries:
            return
        rows = [
            {"list_key": list_key, "member_id": member_id, "record_hash": record_hash, "changed_at": changed_at,
             "sent_at": sent_at}
            for member_id, record_hash, changed_at in {entry[0]: entry for entry in entries}.values()
        ]
        statement = insert_for(self.engine)(sent_records_table)
        upsert = statement.on_conflict_do_update(
            index_elements=["list_key", "member_id"],
            set_={name: statement.excluded[name] for name in ("record_hash", "changed_at", "sent_at")},
            where=statement.excluded.changed_at >= sent_records_table.c.changed_at,
        )
        with self.engine.begin() as connection:
            connection.execute(upsert, rows)  # one compiled statement, executemany


def record_hash(record: dict[str, Any]) -> str:
    """The record as the Contacts API keeps it, without `changed_at`.

    Mailchimp moves `last_changed` for edits the API never sees (stats, notes, tags that are not
    exported); leaving the timestamp out is what lets those contacts be skipped.
    """
    content = {name: value for name, value in record.items() if name != "changed_at"}
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


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

    def remember(self, list_key: str, accepted: Sequence[dict[str, Any]]) -> None:
        self.sent.remember(
            list_key,
            [(member_id_of(record), record_hash(record), record["changed_at"]) for record in accepted],
            datetime.now(timezone.utc),
        )
