"""The daily history, and the compaction that keeps the instance the size of its horizon.

Every day that leaves the horizon is compacted: its windows' import history moves from the state
database to one Parquet file (a partition of `import_history`, whose materialization sums the day
up), the window files of that day are deleted, and so are the runs older than the horizon, with
their per-window events. What a year of imports leaves in Dagster is then a week of per-window
events and a year of daily history, not 130 million events (docs/scaling.md).
"""

import time
from collections.abc import Iterator
from datetime import date, datetime, timezone

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from importer_dagster.asset_keys import HISTORY_KEY
from importer_dagster.assets import RETRY_POLICY, as_failure
from importer_dagster.core.history import COUNTS, FAILED, HISTORY_SCHEMA, HistoryFiles, ImportHistory
from importer_dagster.core.settings import ConfigError
from importer_dagster.core.windows import horizon_start
from importer_dagster.io_manager import WINDOW_FILES_IO_MANAGER, table_schema
from importer_dagster.partitions import GROUPS, history_days
from importer_dagster.resources import ImporterStorage

COMPACTION_JOB = "compact_history_job"
KEPT_JOBS = {COMPACTION_JOB, "resync_job", "replay_dead_letters_job"}
"""Runs never deleted: they hold materializations of the history."""

history_spec = dg.AssetSpec(
    HISTORY_KEY,
    description="Every window's import, a day at a time, once the day has left the horizon: status, fetched, "
    "exported, skipped, rejected and dead-lettered per list and window.",
    kinds={"parquet"},
    group_name="history",
    skippable=True,
).with_io_manager_key(WINDOW_FILES_IO_MANAGER)


def compact_day(day: str, history: ImportHistory, files: HistoryFiles) -> dict:
    """The day's windows join its history file, a re-sync's replacing the ones they re-imported, and
    the state database forgets them. Returns the day's totals, as its materialization shows them."""
    fresh, kept = history.day_table(day), files.read([day])
    if fresh.num_rows and kept.num_rows:
        keys = pc.binary_join_element_wise(fresh["list_key"], fresh["window"], "|")
        replaced = pc.is_in(pc.binary_join_element_wise(kept["list_key"], kept["window"], "|"), value_set=keys)
        kept = kept.filter(pc.invert(replaced))
    table = pa.concat_tables([kept, fresh]).sort_by([("list_key", "ascending"), ("window", "ascending")])
    files.write(day, table)
    history.forget_day(day)
    return {
        "windows": table.num_rows,
        "lists": len(pc.unique(table["list_key"])),
        "failed_windows": int(pc.sum(pc.equal(table["status"], FAILED)).as_py() or 0),
        **{name: int(pc.sum(table[name]).as_py() or 0) for name in COUNTS},
        "dagster/row_count": table.num_rows,
        "dagster/column_schema": table_schema(HISTORY_SCHEMA),
        "path": dg.MetadataValue.path(str(files.path(day))),
    }


def delete_runs_before(instance: dg.DagsterInstance, moment: datetime) -> int:
    """Finished runs created before `moment`, with their events: every window they touched has left
    the horizon, and the history keeps what they did."""
    finished = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
    deleted = 0
    while True:
        records = instance.get_run_records(
            filters=dg.RunsFilter(statuses=finished, created_before=moment), limit=500, ascending=True
        )
        doomed = [record.dagster_run.run_id for record in records if record.dagster_run.job_name not in KEPT_JOBS]
        for run_id in doomed:
            instance.delete_run(run_id)
        deleted += len(doomed)
        if len(records) < 500 or not doomed:
            return deleted


def compact(
    instance: dg.DagsterInstance, storage: ImporterStorage, days: list[str], log, now: datetime
) -> Iterator[dg.AssetMaterialization]:
    horizon = horizon_start(now)
    for day in days:
        if date.fromisoformat(day) >= horizon.date():
            raise ConfigError(f"day {day} is still inside the horizon (it starts {horizon:%Y-%m-%d}): not compacted")
        metadata = compact_day(day, storage.history(), storage.history_files())
        removed = storage.windows().forget_day(day)
        log.info(f"{day}: {metadata['windows']} windows of {metadata['lists']} lists kept as history; "
                 f"{removed} window folders removed")
        yield dg.AssetMaterialization(asset_key=HISTORY_KEY, partition=day, metadata=metadata)
    log.info(f"{delete_runs_before(instance, horizon)} runs older than the horizon deleted")


@dg.multi_asset(
    name="compact_history",
    specs=[history_spec],
    partitions_def=history_days,
    retry_policy=RETRY_POLICY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
)
def compact_history(context: dg.AssetExecutionContext, storage: ImporterStorage) -> Iterator[dg.AssetMaterialization]:
    try:
        yield from compact(context.instance, storage, list(context.partition_keys), context.log,
                           datetime.now(timezone.utc))
    except ConfigError as error:
        raise as_failure(error) from None
    refresh_status_caches(context.instance, context.log)


def refresh_status_caches(instance: dg.DagsterInstance, log) -> None:
    """The horizon moved at midnight, so every group's status cache is stale: rebuilt here, at
    00:30, rather than by the first person to open a partition view today."""
    started = time.monotonic()
    for group in GROUPS:
        group.refresh_status_cache(instance)
    log.info(f"partition-status caches of {len(GROUPS)} list group(s) rebuilt in {time.monotonic() - started:.0f} s")


compact_history_job = dg.define_asset_job(
    COMPACTION_JOB,
    selection=dg.AssetSelection.assets(compact_history),
    description="Move the days that left the horizon into import_history, and delete their window files and runs.",
)


@dg.schedule(
    job=compact_history_job,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Half past midnight UTC, compact every day that has left the horizon and is not compacted yet.",
)
def compaction_schedule(context: dg.ScheduleEvaluationContext, storage: ImporterStorage):
    days = storage.history().days_before(horizon_start(context.scheduled_execution_time).date().isoformat())
    if not days:
        return dg.SkipReason("no day outside the horizon is waiting to be compacted")
    stamp = context.scheduled_execution_time.date().isoformat()
    return [dg.RunRequest(run_key=f"compact:{stamp}:{day}", partition_key=day) for day in days]
