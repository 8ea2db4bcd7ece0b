"""The checks: freshness as a rule, what the asset's card shows after an import, and its alerts."""

from datetime import datetime, timezone

import dagster as dg

from importer_dagster.checks import freshness_check, stale_windows, window_check_specs
from importer_dagster.core.history import SUCCEEDED
from importer_dagster.dagster_internals import check_executions
from importer_dagster.definitions import defs
from importer_dagster.sensors import freshness_sensor

from .conftest import ACME_LIST, GROUP, IMPORT_JOB, Importer, last_closed_window


def test_a_window_is_late_after_an_hour_and_overdue_after_two():
    now = datetime(2026, 11, 22, 12, 30, tzinfo=timezone.utc)
    statuses = {("a.1", "2026-11-22-10:00"): SUCCEEDED, ("b.1", "2026-11-22-09:00"): SUCCEEDED}

    late, overdue = stale_windows(statuses, ["a.1", "b.1"], now)

    assert late == ["b.1|2026-11-22-10:00"]
    assert overdue == ["a.1|2026-11-22-09:00"]


def test_an_import_run_gives_every_check_a_result_for_the_latest_materialization(importer: Importer):
    key = f"acme.{ACME_LIST}|{last_closed_window()}"

    result = defs.resolve_job_def(IMPORT_JOB).execute_in_process(
        instance=importer.instance, tags={"dagster/partition": key}
    )

    assert result.success
    for check in [*(spec.key for spec in window_check_specs(GROUP)), freshness_check(GROUP).key]:
        [latest] = check_executions(importer.instance, check, limit=1)
        assert latest.run_id == result.run_id and latest.evaluation is not None, check.to_user_string()


def evaluate_freshness(importer: Importer, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=importer.instance, cursor=cursor, resources={"storage": importer.storage})
    return freshness_sensor(context)


def test_the_freshness_sensor_records_the_check_and_alerts_each_overdue_window_once(importer: Importer, webhook):
    started = evaluate_freshness(importer, None)
    first = evaluate_freshness(importer, started.cursor)
    again = evaluate_freshness(importer, first.cursor)

    [evaluation] = started.asset_events
    assert evaluation.check_name == freshness_check(GROUP).name and not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR, "no list was ever imported: overdue"
    [message] = webhook.messages
    assert f"acme.{ACME_LIST} window" in message["text"] and "not imported two hours after they closed" in message["text"]
    assert again.asset_events[0].passed is False and again.cursor == first.cursor
