"""The automation through the real daemon, on PostgreSQL storage, as a deployment runs it.

One story, in order: the discovery sensor registers the lists and imports their history through
the run queue; a window breaks and turns red; the retry sensor re-runs it alone, gives up and
alerts; the alert sensor reports the failed runs; a backfill of the failed windows turns it green.
"""

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg


from .conftest import ACME_LIST, ACME_SMALL_LIST, GLOBEX_LIST, GROUP, LISTS_PARTITIONS_NAME, PARTITIONS, asset_key

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def statuses(instance, keys):
    return instance.get_status_by_partition(asset_key("exported_batches"), keys, PARTITIONS) or {}


def test_the_daemon_discovers_imports_retries_alerts_and_backfills(
    postgres_home, importer_env, mailchimp_sim, contacts_sim, webhook, monkeypatch
):
    home, pg_env = postgres_home
    start = (datetime.now(timezone.utc) - timedelta(hours=6)).strftime("%Y-%m-%d")
    env = {
        **os.environ,
        **pg_env,
        "IMPORTER_START_DATE": start,
        "IMPORTER_RETRY_COOLDOWN_S": "0",
        "IMPORTER_MAX_AUTO_RETRIES": "1",
    }
    for name, value in pg_env.items():
        monkeypatch.setenv(name, value)
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-m", "importer_dagster.definitions"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            lists = [f"acme.{ACME_LIST}", f"acme.{ACME_SMALL_LIST}", f"globex.{GLOBEX_LIST}"]
            wait_for(lambda: sorted(instance.get_dynamic_partitions(LISTS_PARTITIONS_NAME)) == sorted(lists),
                     90, "the discovery sensor to register the lists")
            now = datetime.now(timezone.utc)
            first = datetime.fromisoformat(start).replace(tzinfo=timezone.utc)
            hours = int((now - first).total_seconds() // 3600)
            windows = [(first + timedelta(hours=h)).strftime("%Y-%m-%d-%H:00") for h in range(hours)]
            history = [f"{name}|{window}" for name in lists for window in windows]
            wait_for(
                lambda: set(statuses(instance, history).values()) == {dg.AssetPartitionStatus.MATERIALIZED}
                and len(statuses(instance, history)) == len(history),
                240, "the history runs to import every window",
            )
            history_runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": "list_discovery_sensor"}))
            assert len(history_runs) == 3, "one run per new list covers its whole history"
            assert {run.tags["importer/account"] for run in history_runs} == {"acme", "globex"}

            broken = f"acme.{ACME_SMALL_LIST}|{windows[-1]}"
            [small] = [l for a in mailchimp_sim.world.accounts for l in a.lists if l.id == ACME_SMALL_LIST]
            small.archived = True
            subprocess.run(
                [str(BIN / "dagster"), "asset", "materialize", "-m", "importer_dagster.definitions",
                 "--select", f"group:{GROUP.name}", "--partition", broken],
                cwd=REPO, env=env, capture_output=True, timeout=180,
            )
            assert statuses(instance, [broken])[broken] == dg.AssetPartitionStatus.FAILED

            retried = wait_for(
                lambda: instance.get_runs(filters=dg.RunsFilter(tags={"importer/auto-retry": "1"})),
                150, "the retry sensor to re-run the failed window",
            )
            assert retried[0].tags["dagster/partition"] == broken
            gave_up = wait_for(
                lambda: [m for m in webhook.messages if "automatic retries" in m["text"]],
                180, "the retry sensor to give up and alert",
            )
            assert "window" in gave_up[0]["text"] and ACME_SMALL_LIST in gave_up[0]["text"]
            wait_for(lambda: [m for m in webhook.messages if "failure(s) in the importer" in m["text"]],
                     120, "the alert sensor to report the failed run")
            assert statuses(instance, [broken])[broken] == dg.AssetPartitionStatus.FAILED

            small.archived = False
            launched = subprocess.run(
                [str(BIN / "importer-dagster"), "backfill-failed", "--account", "acme"],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
            )
            assert launched.returncode == 0, launched.stderr[-2000:]
            assert f"backfilling {broken}" in launched.stdout
            [backfill] = instance.get_backfills()
            wait_for(lambda: statuses(instance, [broken]).get(broken) == dg.AssetPartitionStatus.MATERIALIZED,
                     180, "the backfill to turn the window green")
            wait_for(lambda: instance.get_backfill(backfill.backfill_id).status.value.startswith("COMPLETED"),
                     120, "the backfill to complete")
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)

