import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from importer_dagster.core.history import FAILED, SUCCEEDED, WindowRecord
from importer_dagster.core.windows import horizon_start, window_key_at, windows_between
from importer_dagster.dagster_internals import next_ticks
from importer_dagster.definitions import defs
from importer_dagster.partitions import range_tags
from importer_dagster.schedules import (
    ACCOUNT_TAG,
    hourly_run_requests,
    hourly_schedules,
    oldest_missing,
    segments,
)

from .conftest import (
    ACME_LIST,
    ACME_SMALL_LIST,
    GLOBEX_LIST,
    GROUP,
    IMPORT_ASSETS,
    IMPORT_JOB,
    NOW,
    REPO,
    Importer,
    window_key,
)

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
LISTS = [f"acme.{ACME_LIST}", f"acme.{ACME_SMALL_LIST}", f"globex.{GLOBEX_LIST}"]
TICK = NOW.replace(minute=5)


def test_segments_are_consecutive_active_lists_across_accounts():
    registered = ["a.1", "a.2", "b.1", "a.3", "a.4", "a.5", "c.1"]
    assert list(segments(registered, retired={"a.4"}, max_lists=3)) == [("a.1", "a.2", "b.1"), ("a.3",), ("a.5", "c.1")]


def test_a_segment_runs_from_its_oldest_missing_window_to_the_latest():
    statuses = {("a.1", "w1"): SUCCEEDED, ("a.2", "w1"): FAILED}
    missing = oldest_missing(statuses, ["a.1", "a.2"], ["w1", "w2"])
    assert missing == {"a.1": "w2", "a.2": "w2"}
    [request] = hourly_run_requests(GROUP, "w3", ["a.1", "a.2"], set(), {"a.1": "w2"})
    assert (request.tags[RANGE_START], request.tags[RANGE_END], request.tags[ACCOUNT_TAG]) == ("a.1|w2", "a.2|w3", "a")
    assert request.job_name == IMPORT_JOB
    [same_tick] = hourly_run_requests(GROUP, "w3", ["a.1", "a.2"], set(), {})
    assert same_tick.run_key == request.run_key, "a tick evaluated twice must not launch twice"
    [mixed] = hourly_run_requests(GROUP, "w3", ["a.1", "b.1"], set(), {})
    assert ACCOUNT_TAG not in mixed.tags, "a run of several accounts' lists is not one account's"


def evaluate(importer: Importer, when: datetime):
    context = dg.build_schedule_context(
        instance=importer.instance, scheduled_execution_time=when, resources={"storage": importer.storage}
    )
    return hourly_schedules[GROUP.number](context)


def test_a_tick_for_new_lists_covers_their_full_sync_from_the_horizon(importer: Importer):
    [request] = evaluate(importer, TICK)

    first = window_key_at(horizon_start(TICK))
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (
        f"acme.{ACME_LIST}|{first}", f"globex.{GLOBEX_LIST}|{window_key(TICK - timedelta(hours=1))}"
    )


def imported(importer: Importer, lists: list[str], first: str, last: str) -> None:
    """What a run over these windows would leave in the import history."""
    importer.storage.history().restore([
        WindowRecord(key, window, SUCCEEDED, "earlier-run", 1, 0, 0, 0, 0, 0, None, NOW)
        for key in lists for window in windows_between(first, last)
    ])


def test_after_downtime_a_tick_requests_exactly_the_missing_windows(importer: Importer):
    imported(importer, LISTS, window_key_at(horizon_start(TICK)), window_key(TICK - timedelta(hours=5)))

    [request] = evaluate(importer, TICK)

    latest, gap_start = window_key(TICK - timedelta(hours=1)), window_key(TICK - timedelta(hours=4))
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (f"{LISTS[0]}|{gap_start}", f"{LISTS[-1]}|{latest}")


def test_a_gap_days_back_inside_the_horizon_is_caught_up_too(importer: Importer):
    first = window_key_at(horizon_start(TICK))
    imported(importer, LISTS, first, window_key(TICK - timedelta(days=4)))
    imported(importer, LISTS, window_key(TICK - timedelta(days=3)), window_key(TICK - timedelta(hours=2)))

    [request] = evaluate(importer, TICK)

    assert request.tags[RANGE_START] == f"{LISTS[0]}|{window_key(TICK - timedelta(days=4) + timedelta(hours=1))}"


def test_the_first_tick_after_real_imports_asks_only_for_the_new_hour(importer: Importer):
    dg.materialize(IMPORT_ASSETS, instance=importer.instance, resources=importer.resources,
                   tags=range_tags(f"{LISTS[0]}|{window_key(TICK - timedelta(hours=3))}",
                                   f"{LISTS[-1]}|{window_key(TICK - timedelta(hours=2))}"))
    imported(importer, LISTS, window_key_at(horizon_start(TICK)), window_key(TICK - timedelta(hours=4)))

    [request] = evaluate(importer, TICK)

    latest = window_key(TICK - timedelta(hours=1))
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (f"{LISTS[0]}|{latest}", f"{LISTS[-1]}|{latest}")


def test_after_an_outage_longer_than_the_horizon_a_list_starts_again_from_its_first_window(importer: Importer):
    """The last imports are older than the horizon: the run starts at its first window, which the
    import then opens (nothing before it is on record), so the outage is covered by a full sync."""
    horizon = horizon_start(TICK)
    imported(importer, LISTS, window_key_at(horizon - timedelta(days=3)), window_key_at(horizon - timedelta(days=2)))

    [request] = evaluate(importer, TICK)

    assert request.tags[RANGE_START] == f"{LISTS[0]}|{window_key_at(horizon)}"


def test_at_midnight_the_horizon_moves_a_day_and_the_tick_asks_for_nothing_that_left_it(importer: Importer):
    """A gap in the day that just left the horizon is the compaction's and resync's, not the tick's."""
    after_midnight = (TICK + timedelta(days=1)).replace(hour=0, minute=5)
    old_first, new_first = window_key_at(horizon_start(TICK)), window_key_at(horizon_start(after_midnight))
    assert new_first == window_key_at(horizon_start(TICK) + timedelta(days=1))
    imported(importer, LISTS, window_key(horizon_start(TICK) + timedelta(hours=3)),
             window_key(after_midnight - timedelta(hours=2)))

    [before] = evaluate(importer, TICK)
    [after] = evaluate(importer, after_midnight)

    assert before.tags[RANGE_START] == f"{LISTS[0]}|{old_first}", "inside the horizon, the gap is caught up"
    latest = window_key(after_midnight - timedelta(hours=1))
    assert (after.tags[RANGE_START], after.tags[RANGE_END]) == (f"{LISTS[0]}|{latest}", f"{LISTS[-1]}|{latest}")


def test_a_list_a_running_run_already_covers_is_left_to_it(importer: Importer):
    imported(importer, LISTS, window_key_at(horizon_start(TICK)), window_key(TICK - timedelta(hours=2)))
    history_run = importer.instance.create_run_for_job(
        defs.resolve_job_def(IMPORT_JOB), status=dg.DagsterRunStatus.STARTED,
        tags=range_tags(f"{LISTS[1]}|{window_key_at(horizon_start(TICK))}", f"{LISTS[1]}|{window_key(TICK)}"),
    )

    requests = evaluate(importer, TICK)

    assert history_run.status == dg.DagsterRunStatus.STARTED
    assert [(r.tags[RANGE_START].split("|")[0], r.tags[RANGE_END].split("|")[0]) for r in requests] == [
        (LISTS[0], LISTS[0]), (LISTS[2], LISTS[2]),
    ]


def test_retired_lists_are_not_scheduled(importer: Importer):
    importer.storage.retired_lists().retire({f"acme.{ACME_LIST}": "gone"})
    [request] = evaluate(importer, TICK)
    assert request.tags[RANGE_START].split("|")[0] == f"acme.{ACME_SMALL_LIST}"


def test_the_schedule_fires_five_past_each_hour_in_utc():
    schedule = defs.resolve_schedule_def(f"hourly_import_{GROUP.name}")

    ticks = next_ticks(schedule, datetime(2026, 11, 22, 0, 17, tzinfo=timezone.utc), 3)

    assert [tick.astimezone(timezone.utc) for tick in ticks] == [
        datetime(2026, 11, 22, hour, 5, tzinfo=timezone.utc) for hour in (1, 2, 3)
    ]


def test_a_fresh_instance_runs_the_schedule_and_every_sensor_without_anyone_starting_them(tmp_path):
    (tmp_path / "dagster.yaml").touch()

    def listed(kind: str) -> str:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "dagster"), kind, "list", "-m", "importer_dagster.definitions"],
            capture_output=True, text=True, cwd=REPO, env={**os.environ, "DAGSTER_HOME": str(tmp_path)}, timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    schedules = listed("schedule")
    assert f"Schedule: hourly_import_{GROUP.name} [RUNNING]" in schedules
    assert "Schedule: compaction_schedule [RUNNING]" in schedules
    sensors = listed("sensor")
    for sensor in ("list_discovery_sensor", "failed_partitions_sensor", "alert_sensor", "freshness_sensor"):
        assert f"Sensor: {sensor} [RUNNING]" in sensors
