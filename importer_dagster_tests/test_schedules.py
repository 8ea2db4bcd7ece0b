from datetime import datetime, timezone

import dagster as dg

from importer_dagster.definitions import defs
from importer_dagster.schedules import ACCOUNT_TAG, account_segments, hourly_import_schedule

from .conftest import ACME_LIST, ACME_SMALL_LIST, GLOBEX_LIST, Importer


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


def evaluate(importer: Importer, when: datetime):
    context = dg.build_schedule_context(
        instance=importer.instance, scheduled_execution_time=when, resources={"storage": importer.storage}
    )
    return hourly_import_schedule(context)


def test_a_tick_requests_the_window_that_just_closed_for_every_list_one_run_per_account(importer: Importer):
    requests = evaluate(importer, datetime(2026, 11, 22, 10, 5, tzinfo=timezone.utc))

    assert [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"], r.tags[ACCOUNT_TAG]) for r in requests] == [
        (f"acme.{ACME_LIST}|2026-11-22-09:00", f"acme.{ACME_SMALL_LIST}|2026-11-22-09:00", "acme"),
        (f"globex.{GLOBEX_LIST}|2026-11-22-09:00", f"globex.{GLOBEX_LIST}|2026-11-22-09:00", "globex"),
    ]
    again = evaluate(importer, datetime(2026, 11, 22, 10, 5, tzinfo=timezone.utc))
    assert [r.run_key for r in again] == [r.run_key for r in requests]
    assert len({r.run_key for r in requests}) == len(requests)
    job = defs.resolve_job_def("import_contacts_job")
    for request in requests:
        assert job.partitions_def.get_partition_keys_in_range(request.partition_key_range, dynamic_partitions_store=importer.instance)


def test_retired_lists_are_not_scheduled(importer: Importer):
    importer.storage.retired_lists().retire({f"acme.{ACME_LIST}": "gone"})
    requests = evaluate(importer, datetime(2026, 11, 22, 10, 5, tzinfo=timezone.utc))
    starts = [r.tags["dagster/asset_partition_range_start"] for r in requests]
    assert starts == [f"acme.{ACME_SMALL_LIST}|2026-11-22-09:00", f"globex.{GLOBEX_LIST}|2026-11-22-09:00"]


def test_the_schedule_fires_five_past_each_hour_and_runs_by_default():
    schedule = defs.resolve_schedule_def("hourly_import_schedule")
    assert schedule.cron_schedule == "5 * * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
