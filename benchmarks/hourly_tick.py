"""The hourly tick: every list's latest window, through the run queue and a running daemon."""

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import (
    BIN,
    CONTACTS_URL,
    REPO,
    fleet_environment,
    fleet_list_keys,
    machine_cpu_s,
    start_contacts,
    start_mailchimp,
    stop,
)


def hourly_tick(accounts: int, lists_per_account: int, groups: int) -> dict:
    """One hourly tick over accounts × lists on a PostgreSQL instance, through the daemon's queue.

    Every earlier window of the horizon is recorded as imported in the import history, so the tick
    has exactly the latest window of each list to do (about 50 changed contacts). Every list
    group's schedule is evaluated as the scheduler daemon evaluates it, and its run requests are
    submitted to the QueuedRunCoordinator the way `dagster job launch` submits; the running
    `dagster-daemon` dequeues them under deploy/dagster.yaml (8 runs at most) and launches each in
    its own process.
    """
    from importer_dagster.simulators.contacts import DEMO_API_KEY
    from importer_dagster.throwaway_instance import throwaway_dagster_home

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        with throwaway_dagster_home(workdir, REPO / "deploy" / "dagster.yaml", prefix="importer_bench") as (home, pg_env):
            now = datetime.now(timezone.utc)
            start = now.date() if now.hour >= 2 else now.date() - timedelta(days=1)
            env = {
                **os.environ,
                **fleet_environment(workdir, pg_env, accounts, start.isoformat()),
                "IMPORTER_LIST_GROUPS": str(groups),
                "CONTACTS_API_URL": CONTACTS_URL,
                "CONTACTS_API_KEY": DEMO_API_KEY,
            }
            os.environ.update(env)
            mailchimp = start_mailchimp(workdir, env, "--world", "fleet", "--accounts", str(accounts),
                                        "--lists-per-account", str(lists_per_account))
            contacts = start_contacts(workdir, DEMO_API_KEY, env)
            daemon = None
            try:
                daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "importer_dagster.definitions"],
                                          cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                figures = _tick(fleet_list_keys(accounts, lists_per_account), now)
            finally:
                stop(daemon, mailchimp, contacts)
            with sqlite3.connect(workdir / "c.sqlite3") as audit:
                figures["contacts_imported"] = audit.execute("SELECT count(*) FROM imports").fetchone()[0]
            return {"lists": accounts * lists_per_account, "accounts": accounts, "groups": groups, **figures}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _tick(list_keys: list[str], now: datetime) -> dict:
    import dagster as dg
    import year_seed

    from importer_dagster.core.history import SUCCEEDED, WindowRecord
    from importer_dagster.core.windows import latest_closed_window
    from importer_dagster.dagster_internals import run_submitter
    from importer_dagster.resources import ImporterStorage
    from importer_dagster.schedules import catch_up_windows, hourly_schedules

    latest = latest_closed_window(now)
    storage = ImporterStorage()
    history = storage.history()
    with dg.DagsterInstance.get() as instance:
        year_seed.register(instance, list_keys)
        history.restore([
            WindowRecord(list_key, window_key, SUCCEEDED, "seeded", 1, 0, 0, 0, 0, 0, None, now)
            for window_key in catch_up_windows(latest, now) for list_key in list_keys
        ])
        with run_submitter(instance, "importer_dagster.definitions") as submit:
            cpu_before, started = machine_cpu_s(), time.monotonic()
            run_requests = []
            for schedule in hourly_schedules:
                context = dg.build_schedule_context(instance=instance, scheduled_execution_time=now,
                                                    resources={"storage": storage})
                result = schedule(context)
                run_requests += result if isinstance(result, list) else []
            tick_s = time.monotonic() - started
            run_ids = [submit(request) for request in run_requests]
        runs = instance.get_runs(dg.RunsFilter(run_ids=run_ids))
        while not all(run.is_finished for run in runs):
            time.sleep(0.5)
            runs = instance.get_runs(dg.RunsFilter(run_ids=run_ids))
        wall_s, cpu_s = time.monotonic() - started, machine_cpu_s() - cpu_before
        imported = history.succeeded_at(list_keys, latest)
    return {
        "schedule_ticks_s": round(tick_s, 2),
        "runs_launched": len(run_ids),
        "runs_succeeded": sum(1 for run in runs if run.status == dg.DagsterRunStatus.SUCCESS),
        "windows_imported": len(imported),
        "wall_s": round(wall_s, 1),
        "machine_cpu_s": round(cpu_s, 1),
        "cpu_s_per_list": round(cpu_s / len(list_keys), 3),
    }
