"""Days leaving the horizon: compaction into import_history, re-syncs of old days, the history command,
and the upgrade from the layout before list groups."""

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from importer_dagster.asset_keys import HISTORY_KEY
from importer_dagster.compaction import compaction_schedule, delete_runs_before
from importer_dagster.core.history import SUCCEEDED, WindowRecord
from importer_dagster.core.windows import horizon_start, window_key_at, windows_between
from importer_dagster.definitions import defs
from importer_dagster.simulators.mailchimp import MailchimpSimulator

from .conftest import (
    ACME_LIST,
    GROUP,
    LISTS_PARTITIONS_NAME,
    NOW,
    Importer,
    build_world,
    fast_resources,
    last_closed_window,
)
from .test_assets import status_cache_id

BIN = Path(sys.executable).parent
HORIZON = horizon_start(datetime.now(timezone.utc))
OLD_DAY = (HORIZON - timedelta(days=1)).date().isoformat()
LIST_KEY = f"acme.{ACME_LIST}"


@pytest.fixture
def old_world(monkeypatch):
    """A Mailchimp whose changes fall in the day before the horizon."""
    with MailchimpSimulator(build_world(now=HORIZON - timedelta(hours=1), history_hours=30)) as simulator:
        monkeypatch.setenv("MAILCHIMP_BASE_URL", simulator.base_url)
        yield simulator


def record(window: str, status: str = SUCCEEDED) -> WindowRecord:
    return WindowRecord(LIST_KEY, window, status, "an-import-run", 1, 5, 5, 0, 0, 0, None, NOW)


def test_a_day_that_left_the_horizon_moves_to_import_history(importer: Importer):
    windows = windows_between(f"{OLD_DAY}-00:00", f"{OLD_DAY}-23:00")
    importer.storage.history().restore([record(window) for window in windows])
    leftover = Path(importer.storage.state_dir) / "windows" / "contact_records" / LIST_KEY / windows[0]
    leftover.mkdir(parents=True)

    result = defs.resolve_job_def("compact_history_job").execute_in_process(
        instance=importer.instance, partition_key=OLD_DAY
    )

    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = {name: value.value for name, value in event.materialization.metadata.items()}
    assert (event.materialization.asset_key, event.materialization.partition) == (HISTORY_KEY, OLD_DAY)
    assert metadata["windows"] == 24 and metadata["fetched"] == 24 * 5 and metadata["failed_windows"] == 0
    day = pd.read_parquet(metadata["path"])
    assert sorted(day["window"]) == windows and set(day["list_key"]) == {LIST_KEY}
    assert importer.storage.history().records(LIST_KEY) == [], "the state database keeps the horizon only"
    assert not leftover.exists(), "the day's window files are gone"
    loaded = defs.load_asset_value(HISTORY_KEY, partition_key=OLD_DAY, instance=importer.instance)
    assert len(loaded) == 24


def test_the_compaction_schedule_asks_for_each_day_still_in_the_database(importer: Importer):
    older = (HORIZON - timedelta(days=3)).date().isoformat()
    importer.storage.history().restore([record(f"{older}-05:00"), record(f"{OLD_DAY}-07:00"),
                                        record(window_key_at(HORIZON + timedelta(hours=2)))])
    context = dg.build_schedule_context(instance=importer.instance, resources={"storage": importer.storage},
                                        scheduled_execution_time=datetime.now(timezone.utc))

    requests = compaction_schedule(context)

    assert [request.partition_key for request in requests] == [older, OLD_DAY]


def test_compaction_deletes_runs_that_left_the_horizon_and_keeps_the_historys(importer: Importer):
    imported = importer.materialize(f"{LIST_KEY}|{last_closed_window()}")
    compaction = defs.resolve_job_def("compact_history_job").execute_in_process(
        instance=importer.instance, partition_key=OLD_DAY
    )

    deleted = delete_runs_before(importer.instance, datetime.now(timezone.utc) + timedelta(seconds=1))

    assert deleted >= 1 and importer.instance.get_run_by_id(imported.run_id) is None
    assert importer.instance.get_run_by_id(compaction.run_id) is not None


def test_the_nightly_compaction_rebuilds_every_groups_partition_status_cache(
    postgres_instance: dg.DagsterInstance, importer_env, contacts_sim
):
    """The horizon moves at midnight, which makes Dagster rebuild each asset's status cache from all
    its events: the compaction does it at 00:30, so the first partition view of the day does not."""
    resources = fast_resources(importer_env["IMPORTER_STATE_DIR"], contacts_sim.base_url)
    Importer(postgres_instance, resources, resources["storage"]).materialize(f"{LIST_KEY}|{last_closed_window()}")
    postgres_instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, ["globex.c3d4e5f6a7"])
    keys = list(GROUP.asset_keys.values())
    before = [status_cache_id(postgres_instance, key) for key in keys]

    compaction = defs.resolve_job_def("compact_history_job").execute_in_process(
        instance=postgres_instance, partition_key=OLD_DAY, resources=resources)

    after = [status_cache_id(postgres_instance, key) for key in keys]
    assert compaction.success and all(old != new for old, new in zip(before, after))
    for key in keys:
        postgres_instance.get_status_by_partition(key, [], GROUP.partitions)
    assert [status_cache_id(postgres_instance, key) for key in keys] == after


def test_an_old_day_is_resynced_and_joins_its_history(importer: Importer, old_world, contacts_sim):
    first, last = f"{OLD_DAY}-20:00", f"{OLD_DAY}-22:00"
    expected = {m for m, changed in old_world.members_truth(ACME_LIST).items()
                if datetime.fromisoformat(f"{OLD_DAY}T20:00:00+00:00") <= changed < datetime.fromisoformat(f"{OLD_DAY}T23:00:00+00:00")}

    result = defs.get_job_def("resync_job").execute_in_process(
        run_config={"ops": {"resync_windows": {"config": {"list_key": LIST_KEY, "first": first, "last": last}}}},
        instance=importer.instance,
    )

    assert result.success
    assert {row["external_id"].split(":")[1] for row in contacts_sim.imports("acme-contacts")} == expected
    [event] = result.get_asset_materialization_events()
    assert (event.materialization.asset_key, event.materialization.partition) == (HISTORY_KEY, OLD_DAY)
    day = importer.storage.history_files().records(LIST_KEY, first, last)
    assert [r.window for r in day] == windows_between(first, last) and sum(r.exported for r in day) == len(expected)


def test_a_resync_inside_the_horizon_is_refused_in_one_line(importer: Importer):
    inside = window_key_at(HORIZON + timedelta(hours=1))
    result = defs.get_job_def("resync_job").execute_in_process(
        run_config={"ops": {"resync_windows": {"config": {"list_key": LIST_KEY, "first": inside, "last": inside}}}},
        instance=importer.instance, raise_on_error=False,
    )
    [failure] = [event.step_failure_data for event in result.all_events if event.is_step_failure]
    assert failure.user_failure_data.description.startswith(f"window {inside} is inside the horizon")


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "importer-dagster"), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DAGSTER_HOME": str(home)})


def test_history_shows_a_lists_windows_from_the_database_and_the_day_files(importer: Importer, tmp_path):
    recent, old = window_key_at(HORIZON + timedelta(hours=5)), f"{OLD_DAY}-09:00"
    importer.storage.history().restore([record(recent), record(old)])
    importer.storage.history_files().write(OLD_DAY, importer.storage.history().day_table(OLD_DAY))
    importer.storage.history().forget_day(OLD_DAY)
    home = tmp_path / "home"
    home.mkdir()

    shown = run_cli("history", "--list", LIST_KEY, home=home)

    assert shown.returncode == 0, shown.stderr
    assert [line.split("\t")[:3] for line in shown.stdout.splitlines()[1:]] == [[old, SUCCEEDED, "5"], [recent, SUCCEEDED, "5"]]
