"""Benchmarks: figures printed as a table and written as JSON. Never asserted by tests.

    python benchmarks/bench.py full-sync [--members 1000000] [--latency-ms 0 250]
    python benchmarks/bench.py hourly-tick [--accounts 10] [--lists-per-account 100]
    python benchmarks/bench.py partition-scale [--lists 1000] [--days 30] [--accounts 10]

Everything runs on 127.0.0.1. The simulators run in their own processes, and the import runs in
its own process through `dagster asset materialize`, so each peak RSS is the importer's alone.
"""

import argparse
import contextlib
import cProfile
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' PostgreSQL helper is not part of the installed package
ACME_KEY_ENV = "MAILCHIMP_KEY_ACME"
LIST_ID = "1a2d7ebf82"


def machine() -> str:
    return f"{platform.node()}: {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30} GiB, Python {platform.python_version()}"


def wait_for_line(process: subprocess.Popen, marker: str) -> str:
    for line in process.stdout:
        if marker in line:
            return line.strip()
    raise RuntimeError(f"the simulator exited before printing {marker!r}")


class Simulators:
    """Both simulators in processes of their own, as a deployment would see real APIs."""

    def __init__(self, workdir: Path, members: int, latency_ms: float):
        from importer_dagster.simulators.contacts import DEMO_API_KEY

        self.contacts_key = DEMO_API_KEY
        common = dict(stdout=subprocess.PIPE, text=True, cwd=workdir)
        self.mailchimp = subprocess.Popen(
            [str(BIN / "importer-dagster"), "simulate-mailchimp", "--port", "18765", "--members", str(members),
             "--page-delay-ms", str(latency_ms)], **common)
        self.contacts = subprocess.Popen(
            [str(BIN / "importer-dagster"), "simulate-contacts", "--port", "18766", "--db", str(workdir / "c.sqlite3"),
             "--api-key", DEMO_API_KEY], **common)
        wait_for_line(self.mailchimp, "Mailchimp simulator on")
        wait_for_line(self.contacts, "Contacts API simulator on")
        self.mailchimp_url = "http://127.0.0.1:18765/3.0"
        self.contacts_url = "http://127.0.0.1:18766"

    def stop(self) -> None:
        for process in (self.mailchimp, self.contacts):
            process.terminate()
            process.wait(timeout=30)


def download(base_url: str, key: str, since: str | None, before: str, parallel: int, fields: str | None) -> int:
    """The ceiling (parallel, trimmed) or the naive baseline (sequential, untrimmed): pages and nothing else."""
    session = requests.Session()
    session.auth = ("bench", key)
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=parallel)
    session.mount("http://", adapter)
    params = {"count": 1000, "before_last_changed": before, "sort_field": "last_changed", "sort_dir": "ASC"}
    if since:
        params["since_last_changed"] = since
    if fields:
        params["fields"] = fields
    first = session.get(f"{base_url}/lists/{LIST_ID}/members", params={**params, "offset": 0}).json()
    total = first["total_items"]

    def page(offset: int) -> int:
        return len(session.get(f"{base_url}/lists/{LIST_ID}/members", params={**params, "offset": offset}).content)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(page, range(1000, total, 1000)))
    return total


def full_sync(members: int, latency_ms: float, profile_dir: Path | None = None) -> dict:
    from importer_dagster.mailchimp import MEMBER_FIELDS
    from importer_dagster.simulators.mailchimp import DEMO_KEYS

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    simulators = Simulators(workdir, members, latency_ms)
    try:
        now = datetime.now(timezone.utc)
        # The simulator spreads changes over the last 48 hours: most fall before today, in the
        # first window (the full sync), and the hours since midnight follow, as for a new list.
        start = (now.date() if now.hour >= 2 else now.date() - timedelta(days=1)).isoformat()
        last = (now - timedelta(hours=1)).strftime("%Y-%m-%d-%H:00")
        accounts = workdir / "accounts.yaml"
        accounts.write_text(f"accounts:\n  - id: acme\n    mailchimp_api_key_env: {ACME_KEY_ENV}\n    contacts_account: acme\n")
        env = {
            **os.environ,
            "DAGSTER_HOME": str(workdir / "home"),
            "IMPORTER_STATE_DIR": str(workdir / "state"),
            "IMPORTER_START_DATE": start,
            "IMPORTER_ACCOUNTS_FILE": str(accounts),
            "MAILCHIMP_BASE_URL": simulators.mailchimp_url,
            "CONTACTS_API_URL": simulators.contacts_url,
            "CONTACTS_API_KEY": simulators.contacts_key,
            ACME_KEY_ENV: DEMO_KEYS[ACME_KEY_ENV],
        }
        (workdir / "home").mkdir()
        (workdir / "home" / "dagster.yaml").touch()
        subprocess.run([str(BIN / "importer-dagster"), "discover"], env=env, check=True, capture_output=True)
        before = (now - timedelta(minutes=now.minute, seconds=now.second, microseconds=now.microsecond)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        key = DEMO_KEYS[ACME_KEY_ENV]

        started = time.monotonic()
        total = download(simulators.mailchimp_url, key, None, before, 10,
                         ",".join(f"members.{name}" for name in MEMBER_FIELDS) + ",total_items")
        ceiling_s = time.monotonic() - started
        started = time.monotonic()
        download(simulators.mailchimp_url, key, None, before, 1, None)
        naive_s = time.monotonic() - started

        profiler = []
        if profile_dir:
            profile_dir.mkdir(parents=True, exist_ok=True)
            profiler = [str(BIN / "py-spy"), "record", "--gil", "--rate", "50", "--format", "raw",
                        "-o", str(profile_dir / f"importer-{members}-{latency_ms:g}ms.txt"), "--"]
        started = time.monotonic()
        with open(workdir / "importer.log", "w") as log:
            importer = subprocess.Popen(
                [*profiler, str(BIN / "dagster"), "asset", "materialize", "-m", "importer_dagster.definitions",
                 "--select", "*", "--partition-range", f"acme.{LIST_ID}|{start}-00:00...acme.{LIST_ID}|{last}"],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            )
            _, status, usage = os.wait4(importer.pid, 0)
        importer_s = time.monotonic() - started
        if status:
            raise RuntimeError((workdir / "importer.log").read_text()[-3000:])
        peak_rss_mb = usage.ru_maxrss / 1024
        return {
            "latency_ms": latency_ms,
            "contacts": total,
            "importer_s": round(importer_s, 1),
            "importer_contacts_per_s": round(total / importer_s),
            "ceiling_contacts_per_s": round(total / ceiling_s),
            "naive_contacts_per_s": round(total / naive_s),
            "ratio_to_ceiling": round(ceiling_s / importer_s, 3),
            "ratio_to_naive": round(naive_s / importer_s, 3),
            "importer_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "importer_peak_rss_mb": round(peak_rss_mb),
        }
    finally:
        simulators.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine: the runs, the daemon and both simulators together."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def hourly_tick(accounts: int, lists_per_account: int) -> dict:
    """One hourly tick over accounts × lists on a PostgreSQL instance, through the daemon's queue.

    The earlier windows are recorded as imported, so the tick has exactly the latest window of each
    list to do (about 50 changed contacts). The schedule is evaluated as the scheduler daemon
    evaluates it, and its run requests are submitted to the QueuedRunCoordinator the way
    `dagster job launch` submits; the running `dagster-daemon` dequeues them under the repository's
    dagster.yaml (8 runs at most, one per account) and launches each in its own process.
    """
    from importer_dagster.simulators.contacts import DEMO_API_KEY
    from importer_dagster.simulators.mailchimp import fleet_key
    from importer_dagster_tests.postgres import fresh_dagster_home

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    with fresh_dagster_home(workdir, prefix="importer_bench") as (home, pg_env):
        return _hourly_tick(workdir, pg_env, accounts, lists_per_account, DEMO_API_KEY, fleet_key)


def _hourly_tick(workdir: Path, pg_env: dict, accounts: int, lists_per_account: int, contacts_key: str, fleet_key) -> dict:
    now = datetime.now(timezone.utc)
    start = now.date() if now.hour >= 2 else now.date() - timedelta(days=1)
    accounts_file = workdir / "accounts.yaml"
    accounts_file.write_text("accounts:\n" + "".join(
        f"  - id: fleet{i}\n    mailchimp_api_key_env: MAILCHIMP_KEY_FLEET{i}\n    contacts_account: fleet{i}\n"
        for i in range(accounts)
    ))
    env = {
        **os.environ,
        **pg_env,
        "IMPORTER_STATE_DIR": str(workdir / "state"),
        "IMPORTER_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{pg_env['DAGSTER_PG_DB']}",
        "IMPORTER_START_DATE": start.isoformat(),
        "IMPORTER_ACCOUNTS_FILE": str(accounts_file),
        "MAILCHIMP_BASE_URL": "http://127.0.0.1:18765/3.0",
        "CONTACTS_API_URL": "http://127.0.0.1:18766",
        "CONTACTS_API_KEY": contacts_key,
        **{f"MAILCHIMP_KEY_FLEET{i}": fleet_key(i) for i in range(accounts)},
    }
    os.environ.update(env)
    common = {"stdout": subprocess.PIPE, "text": True, "cwd": workdir, "env": env}
    mailchimp = subprocess.Popen(
        [str(BIN / "importer-dagster"), "simulate-mailchimp", "--port", "18765", "--world", "fleet",
         "--accounts", str(accounts), "--lists-per-account", str(lists_per_account)], **common)
    contacts = subprocess.Popen(
        [str(BIN / "importer-dagster"), "simulate-contacts", "--port", "18766", "--db", str(workdir / "c.sqlite3"),
         "--api-key", contacts_key], **common)
    wait_for_line(mailchimp, "Mailchimp simulator on")
    wait_for_line(contacts, "Contacts API simulator on")
    daemon = None
    try:
        import dagster as dg
        from dagster._cli.job import _create_run
        from dagster._cli.utils import get_instance_for_cli
        from dagster._cli.workspace.cli_target import (
            WorkspaceOpts,
            get_code_location_from_workspace,
            get_remote_job_from_remote_repo,
            get_remote_repository_from_code_location,
            get_workspace_from_cli_opts,
        )
        from dagster._core.storage.dagster_run import FINISHED_STATUSES, RunsFilter
        from dagster.version import __version__

        from importer_dagster.partition_status import EXPORTED_KEY
        from importer_dagster.partitions import (
            LISTS_PARTITIONS_NAME,
            latest_closed_window,
            list_windows_partitions,
        )
        from importer_dagster.resources import ImporterStorage
        from importer_dagster.schedules import catch_up_windows, hourly_import_schedule

        list_keys = [f"fleet{a}.{a * lists_per_account + i:010x}" for a in range(accounts) for i in range(lists_per_account)]
        latest = latest_closed_window(now)
        with get_instance_for_cli() as instance:
            instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, list_keys)
            for list_key in list_keys:
                for window in catch_up_windows(latest):
                    instance.report_runless_asset_event(dg.AssetMaterialization(EXPORTED_KEY, partition=f"{list_key}|{window}"))
            daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "importer_dagster.definitions"],
                                      cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            workspace_opts = WorkspaceOpts(module_name=("importer_dagster.definitions",))
            with get_workspace_from_cli_opts(instance, version=__version__, workspace_opts=workspace_opts) as workspace:
                location = get_code_location_from_workspace(workspace, None)
                repository = get_remote_repository_from_code_location(location, None)
                job = get_remote_job_from_remote_repo(repository, "import_contacts_job")
                cpu_before, started = machine_cpu_s(), time.monotonic()
                context = dg.build_schedule_context(instance=instance, scheduled_execution_time=now,
                                                    resources={"storage": ImporterStorage()})
                run_requests = hourly_import_schedule(context)
                tick_s = time.monotonic() - started
                run_ids = []
                for request in run_requests:
                    run = _create_run(instance=instance, code_location=location, remote_repo=repository,
                                      remote_job=job, run_config={}, tags=request.tags, op_selection=None, run_id=None)
                    instance.submit_run(run.run_id, workspace)
                    run_ids.append(run.run_id)
            while True:
                runs = instance.get_runs(RunsFilter(run_ids=run_ids))
                if all(run.status in FINISHED_STATUSES for run in runs):
                    break
                time.sleep(0.5)
            wall_s = time.monotonic() - started
            cpu_s = machine_cpu_s() - cpu_before
            latest_keys = [f"{list_key}|{latest}" for list_key in list_keys]
            statuses = instance.get_status_by_partition(EXPORTED_KEY, latest_keys, list_windows_partitions) or {}
            imported = sum(1 for key in latest_keys if statuses.get(key) == dg.AssetPartitionStatus.MATERIALIZED)
        with sqlite3.connect(workdir / "c.sqlite3") as audit:
            contacts_imported = audit.execute("SELECT count(*) FROM imports").fetchone()[0]
        return {
            "lists": len(list_keys),
            "accounts": accounts,
            "schedule_tick_s": round(tick_s, 2),
            "runs_launched": len(run_ids),
            "runs_succeeded": sum(1 for run in runs if run.status == dg.DagsterRunStatus.SUCCESS),
            "windows_imported": imported,
            "contacts_imported": contacts_imported,
            "wall_s": round(wall_s, 1),
            "machine_cpu_s": round(cpu_s, 1),
            "cpu_s_per_list": round(cpu_s / len(list_keys), 3),
        }
    finally:
        for process in (daemon, mailchimp, contacts):
            if process:
                process.terminate()
                process.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


PARTITION_HEALTH_QUERY = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
        ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey primaryDimEndKey primaryDimStartTime primaryDimEndTime
            secondaryDim {
              ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
              ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
            }
          }
        }
      }
    }
  }
}
"""
"""What the UI's partition view asks for, as dagster-webserver 1.13.27's own bundle spells it."""


def record_materializations(instance, asset_key, partition_keys: list[str], batch: int = 2000) -> None:
    """Seeds history quickly: Dagster's batched event writes, one INSERT per `batch` events."""
    import dagster as dg
    from dagster._core.events import (
        DagsterEvent,
        DagsterEventBatchMetadata,
        DagsterEventType,
        StepMaterializationData,
        generate_event_batch_id,
    )

    os.environ["DAGSTER_EVENT_BATCH_SIZE"] = str(batch)
    try:
        for start in range(0, len(partition_keys), batch):
            chunk = partition_keys[start : start + batch]
            batch_id = generate_event_batch_id()
            for index, key in enumerate(chunk):
                event = DagsterEvent(
                    event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                    event_specific_data=StepMaterializationData(dg.AssetMaterialization(asset_key, partition=key)),
                    job_name="",
                )
                instance.report_dagster_event(
                    event, run_id="", batch_metadata=DagsterEventBatchMetadata(batch_id, index == len(chunk) - 1)
                )
    finally:
        del os.environ["DAGSTER_EVENT_BATCH_SIZE"]


def partition_scale(lists: int, days: int, accounts: int, profile_dir: Path | None = None) -> dict:
    """Every list × window of `days` days imported, on PostgreSQL: what the automation and the UI pay.

    Every closed window but the latest is recorded as imported, so the instance holds the history
    a month of hourly imports leaves behind. The first schedule tick after that builds Dagster's
    asset status cache from scratch (cold); the second is the daemon's steady state. The sensors are evaluated against the fleet world in
    the Mailchimp simulator; the partition-status query is sent to a running dagster-webserver
    exactly as its UI sends it.
    """
    from importer_dagster_tests.postgres import fresh_dagster_home

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        with fresh_dagster_home(workdir, prefix="importer_bench") as (home, pg_env):
            return _partition_scale(workdir, pg_env, lists, days, accounts, profile_dir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _partition_scale(workdir: Path, pg_env: dict, lists: int, days: int, accounts: int, profile_dir: Path | None) -> dict:
    from importer_dagster.simulators.mailchimp import fleet_key

    lists_per_account = lists // accounts
    accounts_file = workdir / "accounts.yaml"
    accounts_file.write_text("accounts:\n" + "".join(
        f"  - id: fleet{i}\n    mailchimp_api_key_env: MAILCHIMP_KEY_FLEET{i}\n    contacts_account: fleet{i}\n"
        for i in range(accounts)
    ))
    now = datetime.now(timezone.utc)
    env = {
        **pg_env,
        "IMPORTER_STATE_DIR": str(workdir / "state"),
        "IMPORTER_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{pg_env['DAGSTER_PG_DB']}",
        "IMPORTER_START_DATE": (now - timedelta(days=days)).strftime("%Y-%m-%d"),
        "IMPORTER_ACCOUNTS_FILE": str(accounts_file),
        "MAILCHIMP_BASE_URL": "http://127.0.0.1:18765/3.0",
        **{f"MAILCHIMP_KEY_FLEET{i}": fleet_key(i) for i in range(accounts)},
    }
    os.environ.update(env)
    env = {**os.environ}
    mailchimp = subprocess.Popen(
        [str(BIN / "importer-dagster"), "simulate-mailchimp", "--port", "18765", "--world", "fleet",
         "--accounts", str(accounts), "--lists-per-account", str(lists_per_account)],
        stdout=subprocess.PIPE, text=True, cwd=workdir, env=env)
    wait_for_line(mailchimp, "Mailchimp simulator on")
    webserver = None
    try:
        import dagster as dg

        from importer_dagster.partition_status import EXPORTED_KEY, failed_partitions
        from importer_dagster.partitions import LISTS_PARTITIONS_NAME, latest_closed_window, list_windows_partitions
        from importer_dagster.resources import ImporterStorage, MailchimpResource
        from importer_dagster.schedules import hourly_import_schedule
        from importer_dagster.sensors import alert_sensor, failed_partitions_sensor, list_discovery_sensor

        figures: dict = {"lists": lists, "days": days}
        list_keys = [f"fleet{a}.{a * lists_per_account + i:010x}" for a in range(accounts) for i in range(lists_per_account)]
        latest = latest_closed_window(now)
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, list_keys)
            started = time.monotonic()
            keys = list_windows_partitions.get_partition_keys(dynamic_partitions_store=instance)
            figures["partitions"] = len(keys)
            figures["enumerate_s"] = round(time.monotonic() - started, 2)
            started = time.monotonic()
            history = [key for key in keys if key.split("|", 1)[1] < latest]
            record_materializations(instance, EXPORTED_KEY, history)
            figures["materialized"] = len(history)
            figures["seeding_s"] = round(time.monotonic() - started, 1)

            storage = ImporterStorage()
            context = dg.build_schedule_context(instance=instance, resources={"storage": storage},
                                                scheduled_execution_time=now)
            for label in ("schedule_tick_cold_s", "schedule_tick_s"):
                profiler = cProfile.Profile() if profile_dir else None
                started = time.monotonic()
                with profiler or contextlib.nullcontext():
                    run_requests = hourly_import_schedule(context)
                figures[label] = round(time.monotonic() - started, 2)
                if profiler:
                    profile_dir.mkdir(parents=True, exist_ok=True)
                    profiler.dump_stats(profile_dir / f"{label[:-2]}.prof")
            figures["schedule_runs"] = len(run_requests)
            sensors = (
                ("list_discovery_sensor", list_discovery_sensor, {"mailchimp": MailchimpResource(), "storage": storage}),
                ("failed_partitions_sensor", failed_partitions_sensor, {}),
                ("alert_sensor", alert_sensor, {}),
            )
            for name, sensor, resources in sensors:
                started = time.monotonic()
                sensor(dg.build_sensor_context(instance=instance, resources=resources))
                figures[f"{name}_s"] = round(time.monotonic() - started, 2)
            started = time.monotonic()
            failed_partitions(instance)
            figures["failed_partitions_query_s"] = round(time.monotonic() - started, 2)

        webserver = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-m", "importer_dagster.definitions", "-h", "127.0.0.1", "-p", "13001"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(120):
            try:
                requests.get("http://127.0.0.1:13001/server_info", timeout=2).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(1)
        ui_profiler = None
        if profile_dir:
            ui_profiler = subprocess.Popen([str(BIN / "py-spy"), "record", "--rate", "50", "--format", "raw", "--pid",
                                            str(webserver.pid), "-o", str(profile_dir / "ui-partition-status.txt")])
            time.sleep(2)
        for label in ("ui_partition_status_first_s", "ui_partition_status_again_s"):
            started = time.monotonic()
            answer = requests.post("http://127.0.0.1:13001/graphql", timeout=600, json={
                "query": PARTITION_HEALTH_QUERY, "variables": {"assetKey": {"path": EXPORTED_KEY.path}}})
            figures[label] = round(time.monotonic() - started, 2)
            answer.raise_for_status()
            if "errors" in answer.json():
                raise RuntimeError(answer.json()["errors"])
        if ui_profiler:
            ui_profiler.send_signal(signal.SIGINT)
            ui_profiler.wait(timeout=60)
        return figures
    finally:
        for process in (webserver, mailchimp):
            if process:
                process.terminate()
                process.wait(timeout=60)


def table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    widths = {c: max(len(c), *(len(str(row.get(c, ""))) for row in rows)) for c in columns}
    lines = [" | ".join(c.ljust(widths[c]) for c in columns), "-+-".join("-" * widths[c] for c in columns)]
    lines += [" | ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["full-sync", "hourly-tick", "partition-scale"])
    parser.add_argument("--accounts", type=int, default=10, help="how many client accounts the lists belong to")
    parser.add_argument("--lists-per-account", type=int, default=100)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0, 250])
    parser.add_argument("--lists", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results.json"))
    parser.add_argument("--profile", type=Path, help="profile into this folder: the importer with py-spy (full-sync); the tick with cProfile and the webserver's partition query with py-spy (partition-scale)")
    args = parser.parse_args()
    if args.what == "full-sync":
        rows = [full_sync(args.members, latency, args.profile) for latency in args.latency_ms]
    elif args.what == "hourly-tick":
        rows = [hourly_tick(args.accounts, args.lists_per_account)]
    else:
        rows = [partition_scale(args.lists, args.days, args.accounts, args.profile)]
    print(f"machine: {machine()}")
    print(table(rows))
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    results[args.what] = {"machine": machine(), "measured_at": datetime.now(timezone.utc).isoformat(), "rows": rows}
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
