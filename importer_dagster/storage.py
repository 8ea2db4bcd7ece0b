"""Durable state between steps: window files and dead letters.

A window can hold a million contacts (a big list's full sync), so no step ever holds one whole:
each step streams Parquet parts of a few thousand rows from the step before it. A window's files
appear atomically (written aside, then renamed into place), so a step that dies half-way leaves
the previous materialization intact and a retry starts clean.

Dead letters are rows in a SQL database (SQLite in the demo, PostgreSQL in a deployment) because
they must outlive runs, be listed by people, and be replayed later.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

MANIFEST = "manifest.json"


class WindowNotMaterialized(LookupError):
    pass


class WindowWriter:
    def __init__(self, final_dir: Path):
        self.final_dir = final_dir
        self._tmp = final_dir.with_name(f"{final_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
        self._tmp.mkdir(parents=True)
        self._parts = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        pq.write_table(table, self._tmp / f"part-{self._parts:05d}.parquet")
        self._parts += 1
        self.rows += table.num_rows

    def commit(self, manifest: dict[str, Any]) -> None:
        (self._tmp / MANIFEST).write_text(json.dumps({**manifest, "rows": self.rows, "parts": self._parts}))
        old = self.final_dir.with_name(f"{self.final_dir.name}.old-{uuid.uuid4().hex[:8]}")
        if self.final_dir.exists():
            self.final_dir.rename(old)
        self._tmp.rename(self.final_dir)
        shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


class WindowFiles:
    """Chunked Parquet files per (stage, list, window) under one directory."""

    def __init__(self, base_dir: str | Path):
        self.base_dir = Path(base_dir)

    def _dir(self, stage: str, list_key: str, window_key: str) -> Path:
        return self.base_dir / stage / list_key / window_key

    def writer(self, stage: str, list_key: str, window_key: str) -> WindowWriter:
        return WindowWriter(self._dir(stage, list_key, window_key))

    def manifest(self, stage: str, list_key: str, window_key: str) -> dict[str, Any]:
        path = self._dir(stage, list_key, window_key) / MANIFEST
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise WindowNotMaterialized(
                f"{stage} has not been materialized for {list_key} window {window_key}"
            ) from None

    def _parts(self, stage: str, list_key: str, window_key: str) -> list[Path]:
        self.manifest(stage, list_key, window_key)
        return sorted(self._dir(stage, list_key, window_key).glob("part-*.parquet"))

    def column(self, stage: str, list_key: str, window_key: str, name: str) -> Iterator[list[Any]]:
        for part in self._parts(stage, list_key, window_key):
            yield pq.read_table(part, columns=[name]).column(name).to_pylist()

    def rows(self, stage: str, list_key: str, window_key: str) -> Iterator[list[dict[str, Any]]]:
        """Plain dicts built column by column, which costs less than Arrow's row-wise `to_pylist`."""
        for part in self._parts(stage, list_key, window_key):
            table = pq.read_table(part)
            columns = [column.to_pylist() for column in table.columns]
            yield [dict(zip(table.column_names, row, strict=True)) for row in zip(*columns, strict=True)]


@dataclass(frozen=True)
class DeadLetter:
    member_id: str
    reason: str
    payload: str
    external_id: str | None = None


@dataclass(frozen=True)
class DeadLetterRow:
    id: int
    account: str
    list_key: str
    window: str
    stage: str
    member_id: str
    external_id: str | None
    reason: str
    payload: str
    run_id: str
    recorded_at: datetime
    resolved_run_id: str | None


_metadata = sa.MetaData()
dead_letters_table = sa.Table(
    "importer_dead_letters",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(200), nullable=False),
    sa.Column("list_key", sa.String(300), nullable=False),
    sa.Column("window", sa.String(32), nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("member_id", sa.String(200), nullable=False),
    sa.Column("external_id", sa.String(300)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_run_id", sa.String(64)),
    sa.UniqueConstraint("list_key", "window", "stage", "member_id", name="importer_dead_letters_once"),
    sa.Index("importer_dead_letters_open", "account", "resolved_run_id"),
)


retired_lists_table = sa.Table(
    "importer_retired_lists",
    _metadata,
    sa.Column("list_key", sa.String(300), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
)


sent_records_table = sa.Table(
    "importer_sent_records",
    _metadata,
    sa.Column("list_key", sa.String(300), primary_key=True),
    sa.Column("member_id", sa.String(200), primary_key=True),
    sa.Column("record_hash", sa.String(64), nullable=False),
    sa.Column("changed_at", sa.String(32), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
)


def _insert_for(engine: sa.Engine) -> Any:
    """ON CONFLICT upserts, spelled by the dialect: the state database is PostgreSQL or SQLite."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"the importer's state needs PostgreSQL or SQLite, not {dialect}")
    return insert


def state_engine(database_url: str) -> sa.Engine:
    engine = sa.create_engine(database_url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        Path(engine.url.database or ".").parent.mkdir(parents=True, exist_ok=True)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    _metadata.create_all(engine)
    return engine


class RetiredLists:
    """Lists that vanished from Mailchimp or from the accounts file.

    Their partitions stay registered, so their history stays visible; they are only left out of
    the hourly schedule, and come back by themselves if the list reappears.
    """

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def keys(self) -> dict[str, str]:
        with self.engine.connect() as connection:
            return dict(connection.execute(sa.select(retired_lists_table.c.list_key, retired_lists_table.c.reason)).all())

    def retire(self, reasons: dict[str, str]) -> None:
        if not reasons:
            return
        now = datetime.now(timezone.utc)
        with self.engine.begin() as connection:
            connection.execute(retired_lists_table.delete().where(retired_lists_table.c.list_key.in_(list(reasons))))
            connection.execute(
                retired_lists_table.insert(),
                [{"list_key": key, "reason": reason, "retired_at": now} for key, reason in reasons.items()],
            )

    def restore(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            with self.engine.begin() as connection:
                connection.execute(retired_lists_table.delete().where(retired_lists_table.c.list_key.in_(keys)))


class DeadLetters:
    """Contacts that could not be imported, with the reason, kept until someone replays them.

    One row per (list, window, stage, member): a record that fails again updates its row rather
    than piling up copies, and a record that later gets through is marked resolved, not deleted,
    so the history of what went wrong stays.
    """

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def _upsert(self, rows: list[dict[str, Any]]) -> sa.Insert:
        statement = _insert_for(self.engine)(dead_letters_table).values(rows)
        replaced = {name: statement.excluded[name] for name in ("external_id", "reason", "payload", "run_id", "recorded_at")}
        return statement.on_conflict_do_update(
            index_elements=["list_key", "window", "stage", "member_id"],
            set_={**replaced, "resolved_run_id": None},
        )

    def record(
        self, *, account: str, list_key: str, window: str, stage: str, run_id: str, letters: Sequence[DeadLetter]
    ) -> None:
        if not letters:
            return
        now = datetime.now(timezone.utc)
        rows = [
            {**asdict(letter), "account": account, "list_key": list_key, "window": window, "stage": stage,
             "run_id": run_id, "recorded_at": now}
            for letter in {letter.member_id: letter for letter in letters}.values()
        ]
        with self.engine.begin() as connection:
            for start in range(0, len(rows), 500):
                connection.execute(self._upsert(rows[start : start + 500]))

    def open_member_ids(self, list_key: str) -> dict[str, set[str]]:
        """Per window of the list: one query for a whole sweep, however many windows it spans."""
        table = dead_letters_table
        by_window: dict[str, set[str]] = {}
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(table.c.window, table.c.member_id).where(
                    table.c.list_key == list_key, table.c.resolved_run_id.is_(None)
                )
            )
            for window, member_id in rows:
                by_window.setdefault(window, set()).add(member_id)
        return by_window

    def resolve(self, list_key: str, window: str, member_ids: Iterable[str], run_id: str) -> None:
        ids = list(member_ids)
        if not ids:
            return
        table = dead_letters_table
        with self.engine.begin() as connection:
            for start in range(0, len(ids), 500):
                connection.execute(
                    table.update()
                    .where(
                        table.c.list_key == list_key,
                        table.c.window == window,
                        table.c.member_id.in_(ids[start : start + 500]),
                        table.c.resolved_run_id.is_(None),
                    )
                    .values(resolved_run_id=run_id)
                )

    def rows(
        self,
        *,
        account: str | None = None,
        list_key: str | None = None,
        window: str | None = None,
        include_resolved: bool = False,
        limit: int | None = None,
    ) -> list[DeadLetterRow]:
        table = dead_letters_table
        query = sa.select(table).order_by(table.c.id)
        if account:
            query = query.where(table.c.account == account)
        if list_key:
            query = query.where(table.c.list_key == list_key)
        if window:
            query = query.where(table.c.window == window)
        if not include_resolved:
            query = query.where(table.c.resolved_run_id.is_(None))
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [DeadLetterRow(**row._mapping) for row in connection.execute(query)]


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
                    found[member_id] = SentRecord(record_hash, _aware(sent_at))
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
        statement = _insert_for(self.engine)(sent_records_table)
        upsert = statement.on_conflict_do_update(
            index_elements=["list_key", "member_id"],
            set_={name: statement.excluded[name] for name in ("record_hash", "changed_at", "sent_at")},
            where=statement.excluded.changed_at >= sent_records_table.c.changed_at,
        )
        with self.engine.begin() as connection:
            connection.execute(upsert, rows)  # one compiled statement, executemany


def _aware(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
