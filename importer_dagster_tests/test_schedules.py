from datetime import datetime, timedelta, timezone

import dagster as dg

from importer_dagster.assets import import_assets
from importer_dagster.definitions import defs
from importer_dagster.partitions import FIRST_WINDOW_KEY, range_tags
from importer_dagster.schedules import (
    ACCOUNT_TAG,
    account_segments,
    hourly_import_schedule,
    hourly_run_requests,
    oldest_missing,
)

from .conftest import ACME_LIST, ACME_SMALL_LIST, GLOBEX_LIST, NOW, Importer, window_key

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def test_segments_are_consecutive_active_lists_of_one_account():
    registered = ["a.1", "a.2", "b.1", "a.3", "a.4", "a.5", "c.1"]
    segments = list(account_segments(registered, retired={"a.4"}, max_lists=2))
    assert [(segment.account_id, segment.list_keys) for segment in segments] == [
        ("a", ("a.1", "a.2")),
        ("b", ("b.1",)),
        ("a", ("a.3",)),
        ("a", ("a.5",)),
        ("c", ("c.1",)),
    ]


def test_a_segment_runs_from_its_oldest_missing_window_to_the_latest():
    statuses = {"a.1|w1": dg.AssetPartitionStatus.MATERIALIZED, "a.1|w2": None, "a.2|w1": dg.AssetPartitionStatus.FAILED}
    missing = oldest_missing(statuses, ["a.1", "a.2"], ["w1", "w2"])
    assert missing == {"a.1": "w2", "a.2": "w2"}
    [request] = hourly_run_requests("w3", ["a.1", "a.2"], set(), {"a.1": "w2"})
    assert (request.tags[RANGE_START], request.tags[RANGE_END], request.tags[ACCOUNT_TAG]) == ("a.1|w2", "a.2|w3", "a")
    [same_tick] = hourly_run_requests("w3", ["a.1", "a.2"], set(), {})
    assert same_tick.run_key == request.run_key, "a tick evaluated twice must not launch twice"


def evaluate(importer: Importer, when: datetime):
    context = dg.build_schedule_context(
        instance=importer.instance, scheduled_execution_time=when, resources={"storage": importer.storage}
    )
    return hourly_import_schedule(context)


def test_a_tick_for_new_lists_covers_their_full_sync_one_run_per_account(importer: Importer):
    requests = evaluate(importer, datetime(2026, 11, 22, 10, 5, tzinfo=timezone.utc))

    assert [(r.tags[RANGE_START], r.tags[RANGE_END], r.tags[ACCOUNT_TAG]) for r in requests] == [
        (f"acme.{ACME_LIST}|{FIRST_WINDOW_KEY}", f"acme.{ACME_SMALL_LIST}|2026-11-22-09:00", "acme"),
        (f"globex.{GLOBEX_LIST}|{FIRST_WINDOW_KEY}", f"globex.{GLOBEX_LIST}|2026-11-22-09:00", "globex"),
    ]
    assert len({r.run_key for r in requests}) == len(requests)


def test_after_downtime_a_tick_requests_exactly_the_missing_windows(importer: Importer):
    lists = [f"acme.{ACME_LIST}", f"acme.{ACME_SMALL_LIST}", f"globex.{GLOBEX_LIST}"]
    tick = NOW.replace(minute=5)
    for first, last in ((FIRST_WINDOW_KEY, FIRST_WINDOW_KEY),
                        (window_key(tick - timedelta(hours=49)), window_key(tick - timedelta(hours=5)))):
        dg.materialize(import_assets, instance=importer.instance, resources=importer.resources,
                       tags=range_tags(f"{lists[0]}|{first}", f"{lists[-1]}|{last}"))

    requests = evaluate(importer, tick)

    latest, gap_start = window_key(tick - timedelta(hours=1)), window_key(tick - timedelta(hours=4))
    assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests] == [
        (f"acme.{ACME_LIST}|{gap_start}", f"acme.{ACME_SMALL_LIST}|{latest}"),
        (f"globex.{GLOBEX_LIST}|{gap_start}", f"globex.{GLOBEX_LIST}|{latest}"),
    ]


def test_retired_lists_are_not_scheduled(importer: Importer):
    importer.storage.retired_lists().retire({f"acme.{ACME_LIST}": "gone"})
    requests = evaluate(importer, datetime(2026, 11, 22, 10, 5, tzinfo=timezone.utc))
    assert [r.tags[RANGE_START].split("|")[0] for r in requests] == [f"acme.{ACME_SMALL_LIST}", f"globex.{GLOBEX_LIST}"]


def test_the_schedule_fires_five_past_each_hour_and_runs_by_default():
    schedule = defs.resolve_schedule_def("hourly_import_schedule")
    assert schedule.cron_schedule == "5 * * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
