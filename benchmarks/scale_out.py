"""Scale-out: the same work on one Celery worker and on two, measured in the same run.

Two workloads, each on a fresh PostgreSQL instance and Contacts API, with the deployment's pieces:
dagster-daemon and its run queue, RabbitMQ as the broker (a vhost of its own), Redis for the
connection budget, and SeaweedFS as the shared object store for window files.

- **tick**: the hourly tick for 1,000 lists over 10 accounts (about 50 changed contacts each),
  one run per account's 100 lists, every earlier window recorded as imported;
- **onboarding**: 20 new lists of 50,000 contacts each, in 20 accounts, each list's history in
  one run as the discovery sensor launches it.

A worker is `importer-dagster worker --concurrency 1` with a state folder of its own: two workers
are two hosts' worth of workers, on this one machine's two cores.
"""

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import (
    BIN,
    CONTACTS_URL,
    MAILCHIMP_URL,
    REPO,
    cpu_by_role,
    fleet_environment,
    fleet_list_keys,
    machine_cpu_s,
    role_cpu_s,
    start_contacts,
    start_mailchimp,
    stop,
)

TICK = {"accounts": 10, "lists_per_account": 100, "members": 2400}
ONBOARDING = {"accounts": 20, "lists_per_account": 1, "members": 50_000}


def scale_out(workers: list[int]) -> list[dict]:
    from importer_dagster.throwaway_object_store import make_bucket, seaweedfs

    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        with seaweedfs(scratch / "seaweedfs") as endpoint:
            for workload, shape in (("tick", TICK), ("onboarding", ONBOARDING)):
                for count in workers:
                    print(f"{workload} on {count} worker(s)", flush=True)
                    rows.append({"workload": workload, "workers": count,
                                 **_measure(workload, shape, count, endpoint, make_bucket(endpoint))})
                single = next(row for row in rows if row["workload"] == workload and row["workers"] == workers[0])
                for row in rows:
                    if row["workload"] == workload:
                        row["speed_up"] = round(single["wall_s"] / row["wall_s"], 2)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def _measure(workload: str, shape: dict, count: int, endpoint: str, bucket: str) -> dict:
    import dagster as dg

    from importer_dagster.simulators.contacts import DEMO_API_KEY
    from importer_dagster.partitions import GROUPS
    from importer_dagster.throwaway_instance import stop_automation, throwaway_dagster_home
    from importer_dagster.throwaway_object_store import object_store_environment

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    vhost = f"importer-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True,
                   capture_output=True)
    previous = dict(os.environ)
    try:
        with throwaway_dagster_home(workdir, REPO / "deploy" / "dagster.yaml", prefix="importer_bench") as (_, pg_env):
            now = datetime.now(timezone.utc)
            env = {
                **os.environ,
                **fleet_environment(workdir, pg_env, shape["accounts"], (now - timedelta(days=2)).date().isoformat()),
                **object_store_environment(endpoint),
                "IMPORTER_FILES_URL": f"{bucket}/{workload}",
                "IMPORTER_REDIS_URL": "redis://127.0.0.1:6379/0",
                "IMPORTER_CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
                "IMPORTER_LISTS_PER_RUN": str(shape["lists_per_account"]),
                "CONTACTS_API_URL": CONTACTS_URL,
                "CONTACTS_API_KEY": DEMO_API_KEY,
            }
            os.environ.update(env)
            mailchimp = start_mailchimp(workdir, env, "--world", "fleet", "--accounts", str(shape["accounts"]),
                                        "--lists-per-account", str(shape["lists_per_account"]),
                                        "--members", str(shape["members"]))
            contacts = start_contacts(workdir, DEMO_API_KEY, env)
            keys = fleet_list_keys(shape["accounts"], shape["lists_per_account"])
            with dg.DagsterInstance.get() as instance:
                instance.add_dynamic_partitions(GROUPS[0].lists_partitions.name, keys)
            stop_automation(env, REPO)
            processes = []
            try:
                processes.append(subprocess.Popen(
                    [str(BIN / "dagster-daemon"), "run", "-m", "importer_dagster.definitions"],
                    cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                for index in range(count):
                    processes.append(_worker(workdir, env, index))
                figures = _run(workload, keys, now)
            finally:
                stop(*processes, mailchimp, contacts)
            with sqlite3.connect(workdir / "c.sqlite3") as audit:
                figures["contacts_imported"] = audit.execute("SELECT count(*) FROM imports").fetchone()[0]
            figures["contacts_per_s"] = round(figures["contacts_imported"] / figures["wall_s"])
            return figures
    finally:
        os.environ.clear()
        os.environ.update(previous)
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _worker(workdir: Path, env: dict, index: int) -> subprocess.Popen:
    state = workdir / f"worker-{index}"
    log = workdir / f"worker-{index}.log"
    process = subprocess.Popen(
        [str(BIN / "importer-dagster"), "worker", "--name", f"bench-{index}", "--concurrency", "1"],
        cwd=REPO, env={**env, "IMPORTER_STATE_DIR": str(state)}, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "ready." not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"worker {index} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    return process


def _run(workload: str, list_keys: list[str], now: datetime) -> dict:
    import dagster as dg

    from importer_dagster.core.history import SUCCEEDED, WindowRecord
    from importer_dagster.core.windows import (
        horizon_start,
        latest_closed_window,
        partition_key,
        window_key_at,
        window_start,
    )
    from importer_dagster.dagster_internals import run_submitter
    from importer_dagster.partitions import GROUPS, range_tags
    from importer_dagster.resources import ImporterStorage
    from importer_dagster.schedules import catch_up_windows, hourly_schedules

    latest = latest_closed_window(now)
    storage = ImporterStorage()
    with dg.DagsterInstance.get() as instance:
        if workload == "tick":
            storage.history().restore([
                WindowRecord(key, window, SUCCEEDED, "seeded", 1, 0, 0, 0, 0, 0, None, now)
                for window in catch_up_windows(latest, now) for key in list_keys
            ])
            context = dg.build_schedule_context(instance=instance, scheduled_execution_time=now,
                                                resources={"storage": storage})
            requests = [request for schedule in hourly_schedules
                        for request in _as_list(schedule(context))]
        else:
            first = window_key_at(horizon_start(now))
            requests = [dg.RunRequest(job_name=GROUPS[0].job_name,
                                      tags=range_tags(partition_key(key, first), partition_key(key, latest)))
                        for key in list_keys]
        with run_submitter(instance, "importer_dagster.definitions") as submit:
            roles_before, cpu_before, started = cpu_by_role(), machine_cpu_s(), time.monotonic()
            run_ids = [submit(request) for request in requests]
        runs = instance.get_runs(dg.RunsFilter(run_ids=run_ids))
        while not all(run.is_finished for run in runs):
            time.sleep(0.5)
            runs = instance.get_runs(dg.RunsFilter(run_ids=run_ids))
        wall_s, cpu_s, roles = time.monotonic() - started, machine_cpu_s() - cpu_before, cpu_by_role()
    end = window_start(latest) + timedelta(hours=1)
    since = window_start(latest) if workload == "tick" else None
    return {
        "lists": len(list_keys),
        "runs": len(run_ids),
        "runs_succeeded": sum(1 for run in runs if run.status == dg.DagsterRunStatus.SUCCESS),
        "wall_s": round(wall_s, 1),
        "machine_cpu_s": round(cpu_s, 1),
        "contacts_due": _contacts_due(list_keys, since, end),
        **role_cpu_s(roles_before, roles),
    }


def _contacts_due(list_keys: list[str], since: datetime | None, end: datetime) -> int:
    """Mailchimp's own count of the members the requested windows hold: changed in [since, end).

    The simulator's filters are exclusive-inclusive at whole seconds, as the importer assumes the
    worst of; members changed in the hour still open at the tick are not due until the next one.
    """
    import requests

    from importer_dagster.core.windows import split_list_key
    from importer_dagster.simulators.mailchimp import fleet_key

    due = 0
    with requests.Session() as session:
        for key in list_keys:
            account, list_id = split_list_key(key)
            query = {"count": 1, "fields": "total_items",
                     "before_last_changed": (end - timedelta(seconds=1)).isoformat()}
            if since is not None:
                query["since_last_changed"] = (since - timedelta(seconds=1)).isoformat()
            response = session.get(f"{MAILCHIMP_URL}/lists/{list_id}/members", params=query, timeout=30,
                                   auth=("bench", fleet_key(int(account.removeprefix("fleet")))))
            response.raise_for_status()
            due += response.json()["total_items"]
    return due


def _as_list(result) -> list:
    return result if isinstance(result, list) else []
