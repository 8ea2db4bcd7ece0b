"""Every private Dagster API the project uses, in one place, each for a reason no public API serves.

Only the exact `dagster==1.13.27` pin keeps these stable. `test_dagster_internals.py` calls each
one, so an upgrade that moves or changes any of them fails there, by name, before it fails in a
sensor at three in the morning.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import dagster as dg
from dagster._cli.job import _create_run
from dagster._cli.workspace.cli_target import (
    WorkspaceOpts,
    get_code_location_from_workspace,
    get_remote_job_from_remote_repo,
    get_remote_repository_from_code_location,
    get_workspace_from_cli_opts,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
from dagster._core.events import (
    AssetMaterializationPlannedData,
    DagsterEvent,
    EngineEventData,
    StepMaterializationData,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.defs_state.base import set_defs_state_storage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.utils import make_new_backfill_id
from dagster._utils.schedules import cron_string_iterator
from dagster.version import __version__ as dagster_version

__all__ = [
    "CheckExecution",
    "check_executions",
    "launch_asset_backfill",
    "next_ticks",
    "SeededRun",
    "run_submitter",
    "seed_runs",
    "set_defs_state_storage",
]
"""`set_defs_state_storage` is here for the tests: evaluating a sensor against a test instance can
leave Dagster's definitions-state ContextVar pointing at an instance that is gone. The benchmarks
use `seed_runs` and `run_submitter`."""


def launch_asset_backfill(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    partition_keys: Sequence[str],
    asset_keys: Sequence[dg.AssetKey],
    *,
    title: str,
    description: str,
    tags: dict[str, str],
) -> str:
    """A real Dagster backfill, as the UI's dialog submits it: on the Backfills page, run by the daemon.

    Dagster's public surface submits backfills only through GraphQL, which needs a running
    webserver; the command line must work without one.
    """
    backfill_id = make_new_backfill_id()
    instance.add_backfill(
        PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id,
            asset_graph=defs.resolve_asset_graph(),
            partition_names=list(partition_keys),
            asset_selection=list(asset_keys),
            backfill_timestamp=time.time(),
            tags=tags,
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=title,
            description=description,
            run_config=None,
        )
    )
    return backfill_id


@dataclass(frozen=True)
class CheckExecution:
    """One execution of an asset check, from the check history Dagster keeps per check."""

    id: int
    run_id: str
    planned: bool
    """No verdict yet: its run has not evaluated the check (or died before it could)."""
    evaluation: dg.AssetCheckEvaluation | None
    """The verdict, passed or failed, once the check has run."""


def check_executions(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, limit: int) -> list[CheckExecution]:
    """Newest first. The public instance API answers only the latest execution of a check; an
    alert must see every failure since it last looked, and the ones still waiting for a verdict.
    """
    history = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=limit)
    evaluated = (AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED)
    return [
        CheckExecution(
            id=record.id,
            run_id=record.run_id,
            planned=record.status == AssetCheckExecutionRecordStatus.PLANNED,
            evaluation=record.event.dagster_event.event_specific_data
            if record.status in evaluated and record.event is not None
            else None,
        )
        for record in history
    ]


def next_ticks(schedule: dg.ScheduleDefinition, after: datetime, count: int) -> list[datetime]:
    """When the scheduler daemon will fire a schedule next, by the daemon's own cron arithmetic.

    Dagster has no public way to ask; the tests use this to check when the hourly tick happens
    rather than what its cron string says.
    """
    ticks = cron_string_iterator(after.timestamp(), schedule.cron_schedule, schedule.execution_timezone)
    return list(itertools.islice(ticks, count))


@dataclass(frozen=True)
class SeededRun:
    """A finished run as a benchmark seeds it: what a run of the job writes, stamped when it ran."""

    job_name: str
    tags: Mapping[str, str]
    started_at: datetime
    step_key: str
    materializations: Sequence[dg.AssetMaterialization]
    checks: Sequence[dg.AssetCheckEvaluation] = ()
    messages: Sequence[str] = ()
    """The run's log lines."""
    other_events: int = 0
    """Its remaining run and step events (launch, resources, captured logs, outputs), by number."""
    duration_s: float = 60.0


def seed_runs(instance: dg.DagsterInstance, runs: Sequence[SeededRun]) -> list[str]:
    """What a history of runs leaves in a PostgreSQL instance, written fast enough to seed a
    horizon of them: each run's record, created when it ran; every event a run writes, with its
    timestamp; and the indexes Dagster keeps beside them (the partition tags of materializations,
    each asset's latest event, the check executions, the run's start and end).

    A real run writes its events one INSERT each, which would take hours for a week of thousands
    of lists; here the events without index side effects go in one INSERT per run, and the
    materializations through the storage's own batched write, one asset at a time. Returns the
    runs' ids.
    """
    storage = instance.event_log_storage
    run_ids = []
    for run in runs:
        record = instance.run_storage.add_historical_run(
            dg.DagsterRun(job_name=run.job_name, tags=dict(run.tags), status=dg.DagsterRunStatus.STARTED),
            run.started_at,
        )
        entries = _RunEntries(record.run_id, run)
        planned = [entries.event(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                                 AssetMaterializationPlannedData(m.asset_key, partition=m.partition))
                   for m in run.materializations]
        checks_planned = [entries.event(dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
                                        AssetCheckEvaluationPlanned(asset_key=check.asset_key, check_name=check.check_name))
                          for check in run.checks]
        _insert(storage, planned, index_latest=True)
        _insert_checks(storage, checks_planned)
        instance.handle_new_event(entries.event(dg.DagsterEventType.RUN_START, at=1))
        _insert(storage, [*(entries.event(dg.DagsterEventType.ENGINE_EVENT, EngineEventData(), at=1)
                            for _ in range(run.other_events)),
                          *(entries.log(message) for message in run.messages)])
        by_asset: dict[dg.AssetKey, list] = {}
        for m in run.materializations:
            by_asset.setdefault(m.asset_key, []).append(
                entries.event(dg.DagsterEventType.ASSET_MATERIALIZATION, StepMaterializationData(m), at=2))
        for events in by_asset.values():
            storage.store_event_batch(events)
        _insert_checks(storage, [entries.event(dg.DagsterEventType.ASSET_CHECK_EVALUATION, check, at=run.duration_s)
                                 for check in run.checks])
        instance.handle_new_event(entries.event(dg.DagsterEventType.RUN_SUCCESS, at=run.duration_s))
        run_ids.append(record.run_id)
    return run_ids


class _RunEntries:
    def __init__(self, run_id: str, run: SeededRun):
        self.run_id = run_id
        self.run = run
        self.started = run.started_at.timestamp()

    def event(self, event_type: dg.DagsterEventType, data=None, at: float = 0.0) -> EventLogEntry:
        event = DagsterEvent(event_type_value=event_type.value, job_name=self.run.job_name,
                             step_key=self.run.step_key, event_specific_data=data)
        return EventLogEntry(error_info=None, level=logging.DEBUG, user_message="", run_id=self.run_id,
                             timestamp=self.started + at, step_key=self.run.step_key, job_name=self.run.job_name,
                             dagster_event=event)

    def log(self, message: str) -> EventLogEntry:
        return EventLogEntry(error_info=None, level=logging.INFO, user_message=message, run_id=self.run_id,
                             timestamp=self.started + 2, step_key=self.run.step_key, job_name=self.run.job_name)


def _insert(storage, entries: Sequence[EventLogEntry], index_latest: bool = False) -> list[int]:
    """Events in one INSERT; with `index_latest`, each asset's row records its latest one, as a
    one-by-one write would have left it."""
    if not entries:
        return []
    with storage.index_transaction() as connection:
        ids = [row[0] for row in connection.execute(
            storage.prepare_insert_event_batch(entries).returning(SqlEventLogStorageTable.c.id))]
        if index_latest:
            latest = {entry.dagster_event.asset_key: (entry, event_id) for entry, event_id in zip(entries, ids)}
            for entry, event_id in latest.values():
                storage._store_asset_event(connection, entry, event_id)
    return ids


def _insert_checks(storage, entries: Sequence[EventLogEntry]) -> None:
    """Check events in one INSERT, each then recorded in the check's execution history."""
    for entry, event_id in zip(entries, _insert(storage, entries)):
        storage.store_asset_check_event(entry, event_id)


@contextmanager
def run_submitter(instance: dg.DagsterInstance, module_name: str) -> Iterator[Callable[[dg.RunRequest], str]]:
    """Submits run requests to the instance's run coordinator as `dagster job launch` does, but
    many from one workspace load: the benchmark measures the daemon's queue, not CLI start-ups.
    """
    workspace_opts = WorkspaceOpts(module_name=(module_name,))
    with get_workspace_from_cli_opts(instance, version=dagster_version, workspace_opts=workspace_opts) as workspace:
        location = get_code_location_from_workspace(workspace, None)
        repository = get_remote_repository_from_code_location(location, None)
        jobs = {}

        def submit(request: dg.RunRequest) -> str:
            if request.job_name not in jobs:
                jobs[request.job_name] = get_remote_job_from_remote_repo(repository, request.job_name)
            run = _create_run(
                instance=instance, code_location=location, remote_repo=repository, remote_job=jobs[request.job_name],
                run_config=request.run_config or {}, tags=dict(request.tags), op_selection=None, run_id=None,
            )
            instance.submit_run(run.run_id, workspace)
            return run.run_id

        yield submit
