"""The importer's own state database: dead letters, the sent-records store, retired lists, and
the import history of the windows Dagster still tracks.

These must outlive runs, be listed by people and be written by several processes at once, so
they are SQL tables: SQLite in the demo, PostgreSQL in a deployment. The schema lives here, in
one place; the classes that read and write each table live with their concept.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()
dead_letters_table = sa.Table(
    "importer_dead_letters",
    metadata,
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
    sa.Column("replay_run_id", sa.String(64)),
    sa.UniqueConstraint("list_key", "window", "stage", "member_id", name="importer_dead_letters_once"),
    sa.Index("importer_dead_letters_open", "account", "resolved_run_id"),
)


retired_lists_table = sa.Table(
    "importer_retired_lists",
    metadata,
    sa.Column("list_key", sa.String(300), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
)


sent_records_table = sa.Table(
    "importer_sent_records",
    metadata,
    sa.Column("list_key", sa.String(300), primary_key=True),
    sa.Column("member_id", sa.String(200), primary_key=True),
    sa.Column("record_hash", sa.String(64), nullable=False),
    sa.Column("changed_at", sa.String(32), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
)


windows_table = sa.Table(
    "importer_windows",
    metadata,
    sa.Column("list_key", sa.String(300), primary_key=True),
    sa.Column("window", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("fetched", sa.Integer),
    sa.Column("exported", sa.Integer),
    sa.Column("skipped", sa.Integer),
    sa.Column("rejected", sa.Integer),
    sa.Column("dead_lettered", sa.Integer),
    sa.Column("reason", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("importer_windows_by_window", "window", "status"),
)


def insert_for(engine: sa.Engine) -> Any:
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
    metadata.create_all(engine)
    _add_missing_columns(engine)
    return engine


def _add_missing_columns(engine: sa.Engine) -> None:
    """A state database made by an earlier version gains the nullable columns added since."""
    inspector = sa.inspect(engine)
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present:
                    kind = column.type.compile(dialect=engine.dialect)
                    connection.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


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


def aware(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
