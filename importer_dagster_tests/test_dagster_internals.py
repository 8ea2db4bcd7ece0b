"""One test per private Dagster symbol the project relies on: an upgrade that moves one fails here, by name."""

import re
from datetime import datetime, timedelta, timezone

import dagster as dg

from importer_dagster.checks import INVALID_SHARE, window_check_specs
from importer_dagster.dagster_internals import (
    check_executions,
    launch_asset_backfill,
    next_ticks,
    SeededRun,
    run_submitter,
    seed_runs,
    set_defs_state_storage,
)
from importer_dagster.definitions import defs

from .conftest import ACME_LIST, GROUP, IMPORT_JOB, NOW, PARTITIONS, REPO, Importer, asset_key, last_closed_window

PRIVATE_IMPORT = re.compile(r"^\s*(from|import)\s+dagster\._", re.MULTILINE)


def test_no_module_but_dagster_internals_imports_dagsters_private_api():
    sources = [path for folder in ("importer_dagster", "importer_dagster_tests", "benchmarks")
               for path in (REPO / folder).rglob("*.py")]
    offenders = [str(path.relative_to(REPO)) for path in sources
                 if path.name != "dagster_internals.py" and PRIVATE_IMPORT.search(path.read_text())]
    assert len(sources) > 40 and offenders == []


def test_launch_asset_backfill_submits_a_backfill_the_daemon_will_run(importer: Importer):
    key = f"acme.{ACME_LIST}|{last_closed_window()}"

    backfill_id = launch_asset_backfill(
        importer.instance, defs, [key], list(GROUP.asset_keys.values()), title="t", description="d", tags={"a": "b"}
    )

    backfill = importer.instance.get_backfill(backfill_id)
    assert backfill.status.value == "REQUESTED"
    assert backfill.tags == {"a": "b"} and backfill.title == "t"
    assert backfill.asset_backfill_data.target_subset.num_partitions_and_non_partitioned_assets == 3


def test_check_executions_lists_each_failure_with_its_verdict(importer: Importer, mailchimp_sim):
    mailchimp_sim.faults.malformed_member_rate = 0.5
    blocked = importer.materialize(f"acme.{ACME_LIST}|{last_closed_window()}", raise_on_error=False)

    [invalid_share] = [spec for spec in window_check_specs(GROUP) if spec.name == INVALID_SHARE]
    [execution] = check_executions(importer.instance, invalid_share.key, limit=10)

    assert execution.run_id == blocked.run_id and not execution.planned
    assert execution.evaluation.check_name == INVALID_SHARE
    assert execution.evaluation.asset_key == asset_key("contact_records") and not execution.evaluation.passed


def test_next_ticks_follows_the_schedules_cron_in_its_timezone():
    schedule = dg.ScheduleDefinition(name="s", cron_schedule="5 * * * *", execution_timezone="UTC", target="*")
    ticks = next_ticks(schedule, datetime(2026, 11, 22, 9, 30, tzinfo=timezone.utc), 2)
    assert [tick.astimezone(timezone.utc).hour for tick in ticks] == [10, 11]
    assert all(tick.minute == 5 for tick in ticks)


def test_set_defs_state_storage_is_a_context_manager():
    with set_defs_state_storage(None):
        assert defs.resolve_job_def(IMPORT_JOB) is not None


def test_seed_runs_writes_what_finished_import_runs_leave(postgres_instance: dg.DagsterInstance):
    keys = [f"acme.{ACME_LIST}|{window}" for window in (last_closed_window(NOW - timedelta(hours=1)), last_closed_window())]
    exported = asset_key("exported_batches")
    check = dg.AssetCheckEvaluation(asset_key=exported, check_name="a_check", passed=True)
    started = NOW.replace(minute=5)

    seed_runs(postgres_instance, [SeededRun(
        IMPORT_JOB, {"a": "b"}, started, GROUP.job_name,
        [dg.AssetMaterialization(exported, partition=key, metadata={"fetched": 3}) for key in keys],
        [check], messages=["one line", "another"], other_events=5,
    )])

    statuses = postgres_instance.get_status_by_partition(exported, keys, PARTITIONS)
    assert statuses == {key: dg.AssetPartitionStatus.MATERIALIZED for key in keys}
    [record] = postgres_instance.get_run_records()
    run = record.dagster_run
    assert (run.job_name, run.status, run.tags) == (IMPORT_JOB, dg.DagsterRunStatus.SUCCESS, {"a": "b"})
    assert record.create_timestamp == started and record.start_time == started.timestamp() + 1
    [execution] = check_executions(postgres_instance, dg.AssetCheckKey(exported, "a_check"), limit=5)
    assert execution.run_id == run.run_id and execution.evaluation.passed
    events = postgres_instance.all_logs(run.run_id)
    assert [event.user_message for event in events if not event.is_dagster_event] == ["one line", "another"]
    assert len(events) == 2 + 1 + 5 + 2 + 2 + 1 + 1 + 1
    latest = postgres_instance.get_latest_materialization_event(exported)
    assert latest.asset_materialization.partition == keys[-1] and latest.timestamp == started.timestamp() + 2


def test_run_submitter_queues_runs_as_dagster_job_launch_does(tmp_path, monkeypatch, importer_env):
    with dg.instance_for_test(
        temp_dir=str(tmp_path),
        overrides={"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}},
    ) as instance:
        monkeypatch.chdir(REPO)
        with run_submitter(instance, "importer_dagster.definitions") as submit:
            run_id = submit(dg.RunRequest(job_name=IMPORT_JOB,
                                          tags={"dagster/partition": f"acme.{ACME_LIST}|{last_closed_window()}"}))

        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.QUEUED and run.job_name == IMPORT_JOB
