"""Full sync: one list of a million contacts through all three assets, beside its ceiling and a naive client."""

import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

from common import BIN, CONTACTS_URL, MAILCHIMP_URL, REPO, cpu_by_role, machine_cpu_s, start_contacts, start_mailchimp, stop

ACME_KEY_ENV = "MAILCHIMP_KEY_ACME"
LIST_ID = "1a2d7ebf82"
STATE_DATABASES = ("sqlite", "postgres")
CORES = os.cpu_count()
SIMULATORS = ("mailchimp_simulator", "contacts_simulator")


def download(base_url: str, key: str, before: str, parallel: int, fields: str | None) -> int:
    """The ceiling (parallel, trimmed) or the naive baseline (sequential, untrimmed): pages and nothing else."""
    session = requests.Session()
    session.auth = ("bench", key)
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=parallel)
    session.mount("http://", adapter)
    params = {"count": 1000, "before_last_changed": before, "sort_field": "last_changed", "sort_dir": "ASC"}
    if fields:
        params["fields"] = fields
    first = session.get(f"{base_url}/lists/{LIST_ID}/members", params={**params, "offset": 0}).json()
    total = first["total_items"]

    def page(offset: int) -> int:
        return len(session.get(f"{base_url}/lists/{LIST_ID}/members", params={**params, "offset": offset}).content)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(page, range(1000, total, 1000)))
    return total


def full_sync(
    members: int, latency_ms: float, state_databases: list[str], profile_dir: Path | None = None
) -> list[dict]:
    """One row per state database, each against the same ceiling and naive baseline.

    A new list's full sync is its first window, which reaches back to the beginning of time. The
    simulator's 48 hours of changes end as that window closes, so every member is in it and the
    figures are one window's, whatever the hour the benchmark runs. The window after it is empty:
    importing it first measures what a run costs before its first contact (Dagster's start-up,
    loading the definitions), which the per-contact CPU leaves out.
    """
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    now = datetime.now(timezone.utc)
    start = now.date() if now.hour >= 2 else now.date() - timedelta(days=1)
    window_end = datetime.combine(start, datetime.min.time(), timezone.utc) + timedelta(hours=1)
    mailchimp = start_mailchimp(workdir, None, "--members", str(members), "--page-delay-ms", str(latency_ms),
                                "--history-ends", window_end.isoformat())
    try:
        from importer_dagster.simulators.mailchimp import DEMO_KEYS

        ceiling_s, naive_s, total = _baselines(DEMO_KEYS[ACME_KEY_ENV], window_end)
        rows = []
        for database in state_databases:
            label = f"importer-{members}-{latency_ms:g}ms-{database}.txt"
            importer_s, cpu_s, overhead_cpu_s, rss_mb, machine_s, simulators = _import(
                workdir / database, start.isoformat(), database, profile_dir and profile_dir / label
            )
            rows.append({
                "latency_ms": latency_ms,
                "state_db": database,
                "contacts": total,
                "importer_s": round(importer_s, 1),
                "importer_contacts_per_s": round(total / importer_s),
                "ceiling_contacts_per_s": round(total / ceiling_s),
                "naive_contacts_per_s": round(total / naive_s),
                "ratio_to_ceiling": round(ceiling_s / importer_s, 3),
                "ratio_to_naive": round(naive_s / importer_s, 3),
                "importer_cpu_s": round(cpu_s, 1),
                "run_overhead_cpu_s": round(overhead_cpu_s, 1),
                "cpu_us_per_contact": round((cpu_s - overhead_cpu_s) / total * 1e6, 1),
                "importer_peak_rss_mb": rss_mb,
                "machine_busy_cores": round(machine_s / importer_s, 2),
                **{f"{role}_cpu_s": round(seconds, 1) for role, seconds in simulators.items()},
                "rest_of_machine_cpu_s": round(machine_s - cpu_s - sum(simulators.values()), 1),
                "cpu_bound_contacts_per_s": round(total * CORES / machine_s),
                "cpu_bound_ratio_to_ceiling": round(CORES * ceiling_s / machine_s, 3),
            })
        return rows
    finally:
        stop(mailchimp)
        shutil.rmtree(workdir, ignore_errors=True)


def _baselines(key: str, window_end: datetime) -> tuple[float, float, int]:
    """(ceiling seconds, naive seconds, contacts) for the same pages the import reads."""
    from importer_dagster.core.mailchimp import MEMBER_PAGE_FIELDS

    before = window_end.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    started = time.monotonic()
    total = download(MAILCHIMP_URL, key, before, 10, MEMBER_PAGE_FIELDS)
    ceiling_s = time.monotonic() - started
    started = time.monotonic()
    download(MAILCHIMP_URL, key, before, 1, None)
    return ceiling_s, time.monotonic() - started, total


def _import(
    workdir: Path, start: str, database: str, profile: Path | None
) -> tuple[float, float, float, int, float, dict[str, float]]:
    """(seconds, CPU seconds, CPU seconds of an empty window's run, peak RSS MB, the whole machine's
    CPU seconds meanwhile, and each simulator's: the simulators and PostgreSQL share its two cores)
    of the full sync.

    The machine's CPU per contact sets how fast it could import at all: at that cost, every core
    busy all the time gives `cpu_bound_contacts_per_s`. PostgreSQL is in the rest of the machine's
    CPU rather than a figure of its own: its backends' time is only counted when they exit, and
    then all of it, including what earlier runs had them do.

    Each import gets a Contacts API simulator, a state and, on PostgreSQL, a database of its own,
    so none is answered from an earlier one's idempotency memory or sent-records store.
    """
    from importer_dagster.simulators.contacts import DEMO_API_KEY
    from importer_dagster.throwaway_instance import throwaway_dagster_home

    workdir.mkdir(parents=True)
    with ExitStack() as stack:
        env = _environment(workdir, start, DEMO_API_KEY)
        if database == "postgres":
            home, pg_env = stack.enter_context(throwaway_dagster_home(workdir, REPO / "deploy" / "dagster.yaml", "importer_bench"))
            env.update(pg_env, IMPORTER_DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{pg_env['DAGSTER_PG_DB']}")
        contacts = start_contacts(workdir, DEMO_API_KEY)
        stack.callback(stop, contacts)
        subprocess.run([str(BIN / "importer-dagster"), "discover"], env=env, check=True, capture_output=True)
        _, overhead = _materialize(workdir, env, f"acme.{LIST_ID}|{start}-01:00", None)
        machine_before, roles_before = machine_cpu_s(), cpu_by_role()
        seconds, usage = _materialize(workdir, env, f"acme.{LIST_ID}|{start}-00:00", profile)
        machine_s, roles_after = machine_cpu_s() - machine_before, cpu_by_role()
        simulators = {role: roles_after[role] - roles_before[role] for role in SIMULATORS}
        return seconds, _cpu_s(usage), _cpu_s(overhead), round(usage.ru_maxrss / 1024), machine_s, simulators


def _cpu_s(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def _environment(workdir: Path, start: str, contacts_key: str) -> dict[str, str]:
    from importer_dagster.simulators.mailchimp import DEMO_KEYS

    accounts = workdir / "accounts.yaml"
    accounts.write_text(f"accounts:\n  - id: acme\n    mailchimp_api_key_env: {ACME_KEY_ENV}\n    contacts_account: acme\n")
    (workdir / "home").mkdir()
    (workdir / "home" / "dagster.yaml").touch()
    return {
        **os.environ,
        "DAGSTER_HOME": str(workdir / "home"),
        "IMPORTER_STATE_DIR": str(workdir / "state"),
        "IMPORTER_START_DATE": start,
        "IMPORTER_ACCOUNTS_FILE": str(accounts),
        "MAILCHIMP_BASE_URL": MAILCHIMP_URL,
        "CONTACTS_API_URL": CONTACTS_URL,
        "CONTACTS_API_KEY": contacts_key,
        ACME_KEY_ENV: DEMO_KEYS[ACME_KEY_ENV],
    }


def _materialize(workdir: Path, env: dict, partition: str, profile: Path | None):
    """`dagster asset materialize` in a process of its own: (seconds, its own rusage).

    A profiled import runs as py-spy's child, sampled where it holds the GIL; its rusage is then
    py-spy's, so only its profile is worth reading.
    """
    profiler = []
    if profile:
        profile.parent.mkdir(parents=True, exist_ok=True)
        profiler = [str(BIN / "py-spy"), "record", "--gil", "--rate", "100", "--format", "raw", "-o", str(profile), "--"]
    started = time.monotonic()
    with open(workdir / "importer.log", "a") as log:
        importer = subprocess.Popen(
            [*profiler, str(BIN / "dagster"), "asset", "materialize", "-m", "importer_dagster.definitions",
             "--select", "group:lists_00", "--partition", partition],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        )
        _, status, usage = os.wait4(importer.pid, 0)
    if status:
        raise RuntimeError((workdir / "importer.log").read_text()[-3000:])
    return time.monotonic() - started, usage
