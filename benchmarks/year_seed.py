"""What a year of hourly imports leaves behind under the design of docs/scaling.md, seeded directly.

Import it only once the benchmark's settings are in the environment: the package reads them as it
loads.

Running a year of imports would take a year, so its residue is written instead, shaped by the
importer's own code (its materialization metadata, its check evaluations, its run segments):

- the lists, registered in their groups as discovery registers them;
- inside the horizon, and for the day that has just left it and waits for tonight's compaction:
  every hourly run of every group, with every event a real run writes (planned and made
  materializations with their metadata, check evaluations, log lines and the run's other events),
  and the import history's row for each window;
- every older day as the compaction left it: a history Parquet file of every window, and the
  compaction run that wrote it, with its `import_history` materialization. Their hourly runs and
  window files were deleted by that compaction, so there are none to seed.

Not seeded: the window files of the horizon (they are read only by the IO manager, never by the
automation or the partition views measured here) and schedule and sensor ticks (dagster.yaml keeps
a week of them; nothing measured reads them).
"""

import io
import multiprocessing
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import dagster as dg
import pyarrow as pa

from importer_dagster.asset_keys import HISTORY_KEY
from importer_dagster.assets import EventLogReporter
from importer_dagster.checks import Freshness, freshness_check, window_check_results
from importer_dagster.compaction import COMPACTION_JOB
from importer_dagster.core.export import ExportStats
from importer_dagster.core.history import COUNTS, HISTORY_SCHEMA
from importer_dagster.core.importing import RunOutcome, exported_metadata, fetched_metadata
from importer_dagster.core.quality import WindowCounts
from importer_dagster.core.settings import MAX_INVALID_SHARE
from importer_dagster.core.stages import Stage
from importer_dagster.core.sweep import FetchStats
from importer_dagster.core.windows import account_of, decode_partition_key, partition_key
from importer_dagster.dagster_internals import SeededRun, seed_runs
from importer_dagster.io_manager import table_schema
from importer_dagster.partitions import GROUPS, assign_groups, range_tags
from importer_dagster.resources import ImporterStorage
from importer_dagster.schedules import ACCOUNT_TAG, segments

CHANGED_PER_WINDOW = 50
"""Contacts changed per list and hour, as the hourly-tick benchmark's fleet world changes them."""
OTHER_EVENTS_PER_RUN = 14
"""A queued run's events besides its assets' and its log lines, counted on a real one: enqueued,
dequeued, starting, launched, resources (2), logs captured, step start, four check outputs, step
success and the end of execution."""


@dataclass
class Seeded:
    runs: int = 0
    materializations: int = 0
    events: int = 0
    history_rows: int = 0
    history_files: int = 0
    history_file_rows: int = 0


class _Collector:
    """Stands in for a run's context: the importer's own reporter builds the materializations."""

    log = None

    def __init__(self):
        self.materializations: list[dg.AssetMaterialization] = []

    def log_event(self, materialization: dg.AssetMaterialization) -> None:
        self.materializations.append(materialization)


def register(instance: dg.DagsterInstance, list_keys: Sequence[str]) -> dict:
    """The lists in their groups, placed as the discovery sensor places them."""

    assigned, unplaced = assign_groups(list(list_keys), {})
    if unplaced:
        raise SystemExit(f"{len(unplaced)} lists do not fit: raise IMPORTER_LIST_GROUPS")
    for group, keys in assigned.items():
        instance.add_dynamic_partitions(group.lists_partitions.name, keys)
    return assigned


def _window_runs(group, registered: Sequence[str], window_key: str, files) -> Iterator[tuple]:
    """The runs the hourly tick launched for one group and window: one per segment of lists."""

    counts = WindowCounts(CHANGED_PER_WINDOW, CHANGED_PER_WINDOW, 0, 0, exported=CHANGED_PER_WINDOW)
    fetched = FetchStats(CHANGED_PER_WINDOW, 1, 0, 0.21)
    source = {"pages": 1, "duration_s": 0.21}
    for segment in segments(registered, set()):
        collector = _Collector()
        reporter = EventLogReporter(collector, group, files)
        outcome = RunOutcome(threshold=MAX_INVALID_SHARE.get())
        messages = [f"IMPORTER_MAX_INVALID_SHARE={MAX_INVALID_SHARE.get()}, IMPORTER_RESEND_AFTER_S=604800"]
        for list_key in segment:
            window = decode_partition_key(partition_key(list_key, window_key))
            reporter.materialized(Stage.SOURCE, window, {**fetched_metadata(fetched), **window.bounds()})
            reporter.materialized(Stage.RECORDS, window, {"transformed": counts.transformed, "dead_lettered": 0,
                                                          "duplicates": 0, **window.bounds()})
            reporter.materialized(Stage.EXPORTED, window, {
                **exported_metadata(counts, source, ExportStats(batches=1, exported=counts.exported)),
                **window.bounds()})
            messages += [f"{list_key}: fetched {CHANGED_PER_WINDOW} members in 1 pages (0.2 s)",
                         f"{window}: exported {counts.exported}, rejected 0 in 1 batches"]
            outcome.verdicts.windows += 1
        checks = [
            dg.AssetCheckEvaluation(asset_key=result.asset_key, check_name=result.check_name, passed=result.passed,
                                    metadata=result.metadata, severity=result.severity)
            for result in window_check_results(group, outcome)
        ]
        checks.append(Freshness(freshness_check(group), len(registered), [], []).evaluation())
        accounts = {account_of(key) for key in segment}
        tags = {**range_tags(partition_key(segment[0], window_key), partition_key(segment[-1], window_key)),
                **({ACCOUNT_TAG: accounts.pop()} if len(accounts) == 1 else {})}
        closed = decode_partition_key(partition_key(segment[0], window_key)).end
        run = SeededRun(group.job_name, tags, closed + timedelta(minutes=5), f"{group.name}_import",
                        collector.materializations, checks, messages, OTHER_EVENTS_PER_RUN)
        yield run, segment


def seed_windows(instance: dg.DagsterInstance, storage, assigned: dict, windows: Sequence[str], seeded: Seeded,
                 progress=print) -> None:
    """Every group's hourly runs over `windows`, and the import history's row for each window."""

    engine = storage.history().engine
    started = time.monotonic()
    for index, window_key in enumerate(windows):
        rows = io.StringIO()
        for group, registered in assigned.items():
            for run, segment in _window_runs(group, registered, window_key, storage.windows()):
                [run_id] = seed_runs(instance, [run])
                for list_key in segment:
                    rows.write(f"{list_key}\t{window_key}\tsucceeded\t{run_id}\t1\t{CHANGED_PER_WINDOW}\t"
                               f"{CHANGED_PER_WINDOW}\t0\t0\t0\t\\N\t{run.started_at.isoformat()}\n")
                seeded.runs += 1
                seeded.materializations += len(run.materializations)
                seeded.events += (2 * len(run.materializations) + 2 * len(run.checks) + len(run.messages)
                                  + run.other_events + 2)
                seeded.history_rows += len(segment)
        _copy_history(engine, rows)
        if index % 24 == 23:
            progress(f"  seeded {index + 1}/{len(windows)} hours: {seeded.runs} runs, {seeded.events} events "
                     f"in {time.monotonic() - started:.0f} s")


def seed_windows_in_parallel(assigned: dict, windows: Sequence[str], workers: int = 2) -> Seeded:
    """`seed_windows` in `workers` processes, each taking every n-th hour: seeding is CPU-bound in
    Dagster's event serializer, and the machine has more than one core."""
    lists = {group.number: keys for group, keys in assigned.items()}
    shares = [list(windows[worker::workers]) for worker in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_seed_share, [lists] * workers, shares))
    return Seeded(**{name: sum(getattr(part, name) for part in parts) for name in vars(Seeded())})


def _seed_share(lists: dict[int, list[str]], windows: list[str]) -> Seeded:
    seeded = Seeded()
    with dg.DagsterInstance.get() as instance:
        seed_windows(instance, ImporterStorage(), {GROUPS[number]: keys for number, keys in lists.items()}, windows,
                     seeded)
    return seeded


def _copy_history(engine, rows: io.StringIO) -> None:
    rows.seek(0)
    connection = engine.raw_connection()
    try:
        connection.cursor().copy_expert(
            "COPY importer_windows (list_key, \"window\", status, run_id, attempts, fetched, exported, skipped, "
            "rejected, dead_lettered, reason, updated_at) FROM STDIN", rows)
        connection.commit()
    finally:
        connection.close()


def seed_compacted_days(instance: dg.DagsterInstance, storage, list_keys: Sequence[str], days: Sequence[str],
                        runs_per_day: int, seeded: Seeded, progress=print) -> None:
    """Each older day as the compaction left it: its history file and its compaction run."""

    files = storage.history_files()
    keys = pa.array([key for key in list_keys for _ in range(24)])
    for index, day in enumerate(days):
        start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
        windows = [f"{day}-{hour:02d}:00" for hour in range(24)]
        rows = len(keys)
        run_ids = pa.array([str(uuid.uuid5(uuid.NAMESPACE_URL, f"{day}/{i // 200}")) for i in range(rows)])
        table = pa.table({
            "list_key": keys,
            "window": pa.array(windows * len(list_keys)),
            "status": pa.array(["succeeded"] * rows),
            "run_id": run_ids,
            "attempts": pa.array([1] * rows, pa.int32()),
            **{name: pa.array([CHANGED_PER_WINDOW if name in ("fetched", "exported") else 0] * rows, pa.int64())
               for name in COUNTS},
            "reason": pa.array([None] * rows, pa.string()),
            "updated_at": pa.array([start + timedelta(hours=1, minutes=5)] * rows, pa.timestamp("us", tz="UTC")),
        }, schema=HISTORY_SCHEMA)
        files.write(day, table)
        metadata = {
            "windows": rows, "lists": len(list_keys), "failed_windows": 0,
            **{name: (CHANGED_PER_WINDOW * rows if name in ("fetched", "exported") else 0) for name in COUNTS},
            "dagster/row_count": rows,
            "dagster/column_schema": table_schema(HISTORY_SCHEMA),
            "path": dg.MetadataValue.path(str(files.path(day))),
        }
        compacted_at = start + timedelta(days=9, minutes=30)
        seed_runs(instance, [SeededRun(
            COMPACTION_JOB, {"dagster/partition": day}, compacted_at, "compact_history",
            [dg.AssetMaterialization(HISTORY_KEY, partition=day, metadata=metadata)],
            messages=[f"{day}: {rows} windows of {len(list_keys)} lists kept as history; {rows * 3} window folders "
                      "removed", f"{runs_per_day} runs older than the horizon deleted"],
            other_events=OTHER_EVENTS_PER_RUN - 4,
        )])
        seeded.runs += 1
        seeded.materializations += 1
        seeded.history_files += 1
        seeded.history_file_rows += rows
        if index % 30 == 29:
            progress(f"  compacted days: {index + 1}/{len(days)}")
