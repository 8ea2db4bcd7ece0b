"""Change detection: send only what the Contacts API has not already accepted unchanged.

Mailchimp moves `last_changed` for edits the API never sees (stats, notes, tags that are not
exported). The store keeps, per (list, contact), a hash of the record the API last accepted; a
record whose hash is unchanged is skipped, until `resend_after` has passed.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import sqlalchemy as sa

from importer_dagster.core.contacts import encoded_record
from importer_dagster.core.state import aware, sent_records_table
from importer_dagster.core.transform import member_id_of


@dataclass(frozen=True)
class SentRecord:
    record_hash: str
    sent_at: datetime


class SentRecords:
    """What the Contacts API last accepted for each contact, as a hash of the record.

    Written only after the API has answered a batch, and only for the records it accepted, so a
    crash before the write costs a re-send and a rejected record is always tried again. Upserts
    never let an older `changed_at` overwrite a newer one, so runs over different windows of the
    same list can write at the same time. A big list's first sync writes a million rows, so each
    write is one statement over all its rows, in key order: `COPY` into a temporary table and one
    `INSERT … SELECT` on PostgreSQL; on SQLite one `INSERT … SELECT` over the rows passed as one
    JSON text. Member ids are hashes, so unsorted rows land all over the key index; and one
    statement runs entirely in the database library, without the per-row Python calls of an
    executemany, and leaves the interpreter lock to the sweep's other threads while it runs.
    """

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def known(self, list_key: str) -> bool:
        """Whether any contact of the list was ever accepted: a list's first sync needs no lookups."""
        with self.engine.connect() as connection:
            found = connection.execute(
                sa.select(sent_records_table.c.member_id).where(sent_records_table.c.list_key == list_key).limit(1)
            )
            return found.first() is not None

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
        """(member id, record hash, changed_at) of each record the API accepted; the last entry of a
        member wins, as the API's own upsert does within a batch."""
        latest = {entry[0]: entry for entry in entries}
        if not latest:
            return
        with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":
                _copy_upsert(connection, list_key, latest.values(), sent_at)
            else:
                column_type = sent_records_table.c.sent_at.type.dialect_impl(self.engine.dialect)
                stored_at = column_type.bind_processor(self.engine.dialect)(sent_at)
                connection.exec_driver_sql(_SQLITE_UPSERT, (list_key, stored_at, orjson.dumps(list(latest.values()))))


_UPSERT = """
INSERT INTO importer_sent_records (list_key, member_id, record_hash, changed_at, sent_at) {source}
ON CONFLICT (list_key, member_id) DO UPDATE
SET record_hash = excluded.record_hash, changed_at = excluded.changed_at, sent_at = excluded.sent_at
WHERE excluded.changed_at >= importer_sent_records.changed_at
"""
_SQLITE_UPSERT = _UPSERT.format(
    source="SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), ? "
    "FROM json_each(CAST(? AS TEXT)) WHERE true ORDER BY 2"
)
"""The rows arrive as one JSON array of [member id, hash, changed_at]. `WHERE true` is SQLite's
rule for an upsert from a SELECT: without it, ON CONFLICT would parse as part of the join."""


def _copy_upsert(
    connection: sa.Connection, list_key: str, entries: Iterable[tuple[str, str, str]], sent_at: datetime
) -> None:
    text = io.StringIO()
    csv.writer(text).writerows((list_key, member, digest, changed) for member, digest, changed in entries)
    text.seek(0)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(
            "CREATE TEMPORARY TABLE incoming_sent_records "
            "(list_key text, member_id text, record_hash text, changed_at text) ON COMMIT DROP"
        )
        cursor.copy_expert("COPY incoming_sent_records FROM STDIN WITH (FORMAT csv)", text)
        cursor.execute(
            _UPSERT.format(
                source="SELECT list_key, member_id, record_hash, changed_at, %s FROM incoming_sent_records ORDER BY member_id"
            ),
            (sent_at,),
        )
    finally:
        cursor.close()


_CHANGED_AT_ENTRY = len(b'{"changed_at":"2026-12-06T10:00:00Z",')


def record_hash(encoded: bytes) -> str:
    """The record as the Contacts API keeps it, without `changed_at`, from the bytes the batch sends.

    Mailchimp moves `last_changed` for edits the API never sees (stats, notes, tags that are not
    exported); leaving the timestamp out is what lets those contacts be skipped. The encoded record
    has sorted keys, so `changed_at` is its first entry, and validation holds it to UTC to the
    second, twenty characters: what follows that entry, behind a new brace, is the JSON of the rest
    with sorted keys. Those are the bytes every earlier version hashed, so every hash already in a
    store stays valid.
    """
    if not encoded.startswith(b'{"changed_at":"') or encoded[_CHANGED_AT_ENTRY - 2 : _CHANGED_AT_ENTRY] != b'",':
        raise ValueError("change detection needs a validated record, encoded by encoded_record")
    return hashlib.sha256(b"{" + encoded[_CHANGED_AT_ENTRY:]).hexdigest()[:32]


REMEMBER_EVERY = 20_000
"""Accepted records held before they are written to the store: one write per twenty batches."""

Remembered = tuple[str, str, str]
"""(member id, record hash, changed_at): what the store keeps of a record the API accepted."""
Outgoing = tuple[dict[str, Any], Remembered | None]
"""A record to send, and what to remember once the API accepts it. Plain tuples: a million of
them per full sync, and a named tuple costs a Python call each."""


@dataclass
class ChangeDetection:
    """Send only records that changed since the API last accepted them, or that it has not seen lately.

    Every accepted record is sent again once `resend_after` has passed, which heals a target that
    lost data. The batches' idempotency keys are salted with the current `resend_after` period (or,
    when `force_run_id` is set, with the run), so a deliberate re-send is applied rather than
    answered from the API's memory, while a retry within the period still replays.

    Each record is hashed once, from its JSON as the batch sends it, and the hash that decided to
    send it is the one remembered when the API accepts it. The JSON is not kept for the body:
    holding each encoding until its batch was answered cost 40 MB of peak memory, and the batch
    encodes its records again in one call, for less than the hashing costs. What was accepted is
    written to the store every REMEMBER_EVERY records and when the window's export finishes; an
    export that fails in between loses only those writes, which costs a re-send that the API
    answers from its idempotency memory.
    """

    sent: SentRecords
    resend_after: timedelta
    now: datetime
    force_run_id: str | None = None
    _first_sync: bool | None = field(default=None, init=False, repr=False)
    _accepted: list[Remembered] = field(default_factory=list, init=False, repr=False)

    @property
    def salt(self) -> str:
        if self.force_run_id:
            return f"force:{self.force_run_id}"
        return f"period:{int(self.now.timestamp() // self.resend_after.total_seconds())}"

    def changed(self, list_key: str, records: Sequence[dict[str, Any]]) -> list[Outgoing]:
        if self._first_sync is None:
            self._first_sync = not self.sent.known(list_key)
        ids = [member_id_of(record) for record in records]
        known = {} if self._first_sync or self.force_run_id else self.sent.lookup(list_key, ids)
        cutoff = self.now - self.resend_after
        changed = []
        for record, member_id in zip(records, ids, strict=True):
            digest = record_hash(encoded_record(record))
            entry = known.get(member_id)
            if entry is None or entry.sent_at < cutoff or entry.record_hash != digest:
                changed.append((record, (member_id, digest, record["changed_at"])))
        return changed

    def accepted(self, list_key: str, batch: Sequence[Remembered], rejected_member_ids: set[str]) -> None:
        """A batch the API answered: its accepted records are remembered, its rejected ones tried again."""
        if rejected_member_ids:
            self._accepted += [entry for entry in batch if entry[0] not in rejected_member_ids]
        else:
            self._accepted += batch
        if len(self._accepted) >= REMEMBER_EVERY:
            self.flush(list_key)

    def flush(self, list_key: str) -> None:
        if self._accepted:
            self.sent.remember(list_key, self._accepted, datetime.now(timezone.utc))
            self._accepted = []
