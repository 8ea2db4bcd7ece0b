"""The import history: how each window's latest import went, per list, in the state database.

Dagster keeps a window's status only while the window is inside the horizon; the importer keeps
its own record of every import, so that the automation reads one indexed table instead of
Dagster's partition-status cache (rebuilt whenever the horizon moves or a list is added), and so
that nothing is forgotten when Dagster lets a window go. Windows older than the horizon move from
this table to daily Parquet files (`import_history`), written by the compaction.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import sqlalchemy as sa

from importer_dagster.core.files import Place
from importer_dagster.core.quality import WindowCounts
from importer_dagster.core.state import aware, insert_for, windows_table
from importer_dagster.core.windows import ListWindow

SUCCEEDED = "succeeded"
FAILED = "failed"
COUNTS = ("fetched", "exported", "skipped", "rejected", "dead_lettered")

HISTORY_SCHEMA = pa.schema(
    [
        ("list_key", pa.string()),
        ("window", pa.string()),
        ("status", pa.string()),
        ("run_id", pa.string()),
        ("attempts", pa.int32()),
        *((name, pa.int64()) for name in COUNTS),
        ("reason", pa.string()),
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)
"""A row per (list, window): the outcome of its latest import."""


@dataclass(frozen=True)
class WindowRecord:
    list_key: str
    window: str
    status: str
    run_id: str
    attempts: int
    fetched: int | None
    exported: int | None
    skipped: int | None
    rejected: int | None
    dead_lettered: int | None
    reason: str | None
    updated_at: datetime


class ImportHistory:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def _upsert(self, rows: list[dict]) -> None:
        table = windows_table
        statement = insert_for(self.engine)(table)
        replaced = {name: statement.excluded[name] for name in ("status", "run_id", "reason", "updated_at", *COUNTS)}
        upsert = statement.on_conflict_do_update(
            index_elements=["list_key", "window"], set_={**replaced, "attempts": table.c.attempts + 1}
        )
        with self.engine.begin() as connection:
            connection.execute(upsert, rows)

    def succeeded(self, window: ListWindow, run_id: str, counts: WindowCounts) -> None:
        self._upsert([{
            "list_key": window.list_key, "window": window.window_key, "status": SUCCEEDED, "run_id": run_id,
            "attempts": 1, "reason": None, "updated_at": datetime.now(timezone.utc),
            **{name: getattr(counts, name) for name in COUNTS},
        }])

    def failed(self, windows: Sequence[ListWindow], run_id: str, reason: str) -> None:
        now = datetime.now(timezone.utc)
        self._upsert([
            {"list_key": window.list_key, "window": window.window_key, "status": FAILED, "run_id": run_id,
             "attempts": 1, "reason": reason, "updated_at": now, **dict.fromkeys(COUNTS)}
            for window in windows
        ])

    def restore(self, records: Sequence[WindowRecord]) -> None:
        """Rows as they were, from elsewhere (an earlier layout's events)."""
        rows = [vars(record) for record in records]
        for start in range(0, len(rows), 1000):
            table = windows_table
            statement = insert_for(self.engine)(table)
            replaced = {name: statement.excluded[name] for name in table.c.keys() if name not in ("list_key", "window")}
            with self.engine.begin() as connection:
                connection.execute(
                    statement.on_conflict_do_update(index_elements=["list_key", "window"], set_=replaced),
                    rows[start : start + 1000],
                )

    def succeeded_at(self, list_keys: Iterable[str], window: str) -> set[str]:
        """The lists whose window `window` was imported."""
        table, found = windows_table, set()
        keys = list(list_keys)
        with self.engine.connect() as connection:
            for start in range(0, len(keys), 500):
                found.update(connection.execute(
                    sa.select(table.c.list_key).where(
                        table.c.list_key.in_(keys[start : start + 500]), table.c.window == window,
                        table.c.status == SUCCEEDED,
                    )
                ).scalars())
        return found

    def statuses(self, list_keys: Sequence[str], first: str, last: str) -> dict[tuple[str, str], str]:
        """(list key, window) → status, for every window of these lists attempted from `first` to `last`."""
        table, found = windows_table, {}
        with self.engine.connect() as connection:
            for start in range(0, len(list_keys), 500):
                query = sa.select(table.c.list_key, table.c.window, table.c.status).where(
                    table.c.list_key.in_(list_keys[start : start + 500]), table.c.window >= first, table.c.window <= last
                )
                found.update({(key, window): status for key, window, status in connection.execute(query)})
        return found

    def failed_since(self, first: str) -> list[WindowRecord]:
        """Windows whose latest import failed, from `first` on, oldest first."""
        table = windows_table
        query = (
            sa.select(table).where(table.c.window >= first, table.c.status == FAILED)
            .order_by(table.c.window, table.c.list_key)
        )
        with self.engine.connect() as connection:
            return [_record(row) for row in connection.execute(query)]

    def records(self, list_key: str | None = None, first: str | None = None, last: str | None = None) -> list[WindowRecord]:
        table = windows_table
        query = sa.select(table).order_by(table.c.list_key, table.c.window)
        if list_key:
            query = query.where(table.c.list_key == list_key)
        if first:
            query = query.where(table.c.window >= first)
        if last:
            query = query.where(table.c.window <= last)
        with self.engine.connect() as connection:
            return [_record(row) for row in connection.execute(query)]

    def day_table(self, day: str) -> pa.Table:
        """Every window of one UTC day (`YYYY-MM-DD`), as the compaction writes it out."""
        rows = self.records(first=f"{day}-00:00", last=f"{day}-23:00")
        columns = {field.name: [getattr(row, field.name) for row in rows] for field in HISTORY_SCHEMA}
        return pa.table(columns, schema=HISTORY_SCHEMA)

    def forget_day(self, day: str) -> int:
        """Once the day is written out: the table keeps only the windows Dagster still tracks."""
        table = windows_table
        with self.engine.begin() as connection:
            return connection.execute(
                table.delete().where(table.c.window >= f"{day}-00:00", table.c.window <= f"{day}-23:00")
            ).rowcount

    def days_before(self, day: str) -> list[str]:
        """The days (`YYYY-MM-DD`) before `day` that still have windows here: those to compact."""
        day_of = sa.func.substr(windows_table.c.window, 1, 10)
        query = sa.select(day_of).distinct().where(windows_table.c.window < f"{day}-00:00").order_by(day_of)
        with self.engine.connect() as connection:
            return list(connection.execute(query).scalars())


def _record(row: sa.Row) -> WindowRecord:
    values = dict(row._mapping)
    values["updated_at"] = aware(values["updated_at"])
    return WindowRecord(**values)


class HistoryFiles:
    """Days of history older than the horizon, one Parquet file a day: `<day>.parquet`.

    Arrow and pandas read the folder as one dataset (`pd.read_parquet(folder)`), filtered by list
    or window as they like. The folder is a `Place`, local or shared like the window files; a
    file appears whole (written aside, then moved into place).
    """

    def __init__(self, place: Place):
        self.place = place

    def _file(self, day: str) -> str:
        return self.place.join(f"{day}.parquet")

    def path(self, day: str) -> str:
        return self.place.url(self._file(day))

    def write(self, day: str, table: pa.Table) -> None:
        fs = self.place.fs
        fs.makedirs(self.place.root, exist_ok=True)
        aside = self.place.join(f".{day}.parquet.tmp")
        pq.write_table(table, aside, filesystem=fs)
        fs.mv(aside, self._file(day))

    def read(self, days: Iterable[str]) -> pa.Table:
        fs = self.place.fs
        tables = [pq.read_table(self._file(day), schema=HISTORY_SCHEMA, filesystem=fs)
                  for day in days if fs.exists(self._file(day))]
        return pa.concat_tables(tables) if tables else HISTORY_SCHEMA.empty_table()

    def records(self, list_key: str, first: str, last: str) -> list[WindowRecord]:
        """One list's windows from `first` to `last` (window keys), from every day file they fall in."""
        fs = self.place.fs
        days = [path for path in (fs.glob(self.place.join("*.parquet")) if fs.exists(self.place.root) else [])
                if first[:10] <= posixpath.basename(path)[:10] <= last[:10]]
        if not days:
            return []
        dataset = ds.dataset(days, format="parquet", schema=HISTORY_SCHEMA, filesystem=fs)
        window = ds.field("window")
        table = dataset.to_table(
            filter=(ds.field("list_key") == list_key) & (window >= first) & (window <= last)
        ).sort_by([("window", "ascending")])
        return [WindowRecord(**row) for row in table.to_pylist()]
