"""Benchmarks: figures printed as a table and written as JSON. Never asserted by tests.

    python benchmarks/bench.py full-sync [--members 1000000] [--latency-ms 0 250]
    python benchmarks/bench.py partition-scale [--lists 1000] [--days 30]

Everything runs on 127.0.0.1. The simulators run in their own processes, and the import runs in
its own process through `dagster asset materialize`, so each peak RSS is the importer's alone.
"""

import argparse
import json
import os
import platform
import resource
import shutil
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
        start = (now - timedelta(days=3)).strftime("%Y-%m-%d")
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
            profiler = [str(BIN / "py-spy"), "record", "--idle", "--rate", "50", "--format", "raw",
                        "-o", str(profile_dir / f"importer-{members}-{latency_ms:g}ms.txt"), "--"]
        started = time.monotonic()
        result = subprocess.run(
            [*profiler, str(BIN / "dagster"), "asset", "materialize", "-m", "importer_dagster.definitions", "--select", "*",
             "--partition-range", f"acme.{LIST_ID}|{start}-00:00...acme.{LIST_ID}|{last}"],
            env=env, capture_output=True, text=True, cwd=REPO,
        )
        importer_s = time.monotonic() - started
        if result.returncode:
            raise RuntimeError(result.stderr[-3000:])
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return {
            "latency_ms": latency_ms,
            "contacts": total,
            "importer_s": round(importer_s, 1),
            "importer_contacts_per_s": round(total / importer_s),
            "ceiling_contacts_per_s": round(total / ceiling_s),
            "naive_contacts_per_s": round(total / naive_s),
            "ratio_to_ceiling": round(ceiling_s / importer_s, 3),
            "ratio_to_naive": round(naive_s / importer_s, 3),
            "importer_peak_rss_mb": round(peak_rss_mb),
        }
    finally:
        simulators.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def partition_scale(lists: int, days: int) -> dict:
    """The schedule tick, the sensors and the UI's partition-status query at lists × days × 24 partitions."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    os.environ["IMPORTER_START_DATE"] = (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y-%m-%d")
    os.environ["IMPORTER_STATE_DIR"] = str(workdir / "state")
    import dagster as dg

    from importer_dagster.partition_status import EXPORTED_KEY, failed_partitions
    from importer_dagster.partitions import LISTS_PARTITIONS_NAME, list_windows_partitions
    from importer_dagster.resources import ImporterStorage
    from importer_dagster.schedules import hourly_import_schedule
    from importer_dagster.sensors import alert_sensor, failed_partitions_sensor

    figures: dict = {"lists": lists, "days": days}
    with dg.instance_for_test(temp_dir=str(workdir)) as instance:
        instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, [f"client-{i // 10}.{i:010x}" for i in range(lists)])
        started = time.monotonic()
        keys = list_windows_partitions.get_partition_keys(dynamic_partitions_store=instance)
        figures["partitions"] = len(keys)
        figures["enumerate_s"] = round(time.monotonic() - started, 2)
        storage = ImporterStorage(state_dir=str(workdir / "state"))
        context = dg.build_schedule_context(instance=instance, resources={"storage": storage},
                                            scheduled_execution_time=datetime.now(timezone.utc))
        started = time.monotonic()
        requests_ = hourly_import_schedule(context)
        figures["schedule_tick_s"] = round(time.monotonic() - started, 2)
        figures["schedule_runs"] = len(requests_)
        for name, sensor in (("failed_partitions_sensor", failed_partitions_sensor), ("alert_sensor", alert_sensor)):
            started = time.monotonic()
            sensor(dg.build_sensor_context(instance=instance))
            figures[f"{name}_s"] = round(time.monotonic() - started, 2)
        started = time.monotonic()
        failed_partitions(instance)
        instance.get_status_by_partition(EXPORTED_KEY, keys, list_windows_partitions)
        figures["partition_status_query_s"] = round(time.monotonic() - started, 2)
    shutil.rmtree(workdir, ignore_errors=True)
    return figures


def table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    widths = {c: max(len(c), *(len(str(row.get(c, ""))) for row in rows)) for c in columns}
    lines = [" | ".join(c.ljust(widths[c]) for c in columns), "-+-".join("-" * widths[c] for c in columns)]
    lines += [" | ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["full-sync", "partition-scale"])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0, 250])
    parser.add_argument("--lists", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results.json"))
    parser.add_argument("--profile", type=Path, help="record the importer with py-spy into this folder")
    args = parser.parse_args()
    if args.what == "full-sync":
        rows = [full_sync(args.members, latency, args.profile) for latency in args.latency_ms]
    else:
        rows = [partition_scale(args.lists, args.days)]
    print(f"machine: {machine()}")
    print(table(rows))
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    results[args.what] = {"machine": machine(), "measured_at": datetime.now(timezone.utc).isoformat(), "rows": rows}
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
