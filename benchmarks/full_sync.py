"""Full sync: one list of a million contacts through all three assets, beside its ceiling and a naive client."""

import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

from common import BIN, CONTACTS_URL, MAILCHIMP_URL, REPO, start_contacts, start_mailchimp, stop

ACME_KEY_ENV = "MAILCHIMP_KEY_ACME"
LIST_ID = "1a2d7ebf82"


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


def full_sync(members: int, latency_ms: float, profile_dir: Path | None = None) -> dict:
    from importer_dagster.simulators.contacts import DEMO_API_KEY

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    mailchimp = start_mailchimp(workdir, None, "--members", str(members), "--page-delay-ms", str(latency_ms))
    contacts = start_contacts(workdir, DEMO_API_KEY)
    try:
        now = datetime.now(timezone.utc)
        # The simulator spreads changes over the last 48 hours: most fall before today, in the
        # first window (the full sync), and the hours since midnight follow, as for a new list.
        start = (now.date() if now.hour >= 2 else now.date() - timedelta(days=1)).isoformat()
        env = _environment(workdir, start, DEMO_API_KEY)
        subprocess.run([str(BIN / "importer-dagster"), "discover"], env=env, check=True, capture_output=True)
        ceiling_s, naive_s, total = _baselines(env[ACME_KEY_ENV], now)
        last = (now - timedelta(hours=1)).strftime("%Y-%m-%d-%H:00")
        importer_s, usage = _import(workdir, env, f"acme.{LIST_ID}|{start}-00:00...acme.{LIST_ID}|{last}",
                                    profile_dir and profile_dir / f"importer-{members}-{latency_ms:g}ms.txt")
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
            "importer_peak_rss_mb": round(usage.ru_maxrss / 1024),
        }
    finally:
        stop(mailchimp, contacts)
        shutil.rmtree(workdir, ignore_errors=True)


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


def _baselines(key: str, now: datetime) -> tuple[float, float, int]:
    """(ceiling seconds, naive seconds, contacts) for the same pages the import reads."""
    from importer_dagster.core.mailchimp import MEMBER_FIELDS

    before = now.replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    started = time.monotonic()
    total = download(MAILCHIMP_URL, key, before, 10, ",".join(f"members.{name}" for name in MEMBER_FIELDS) + ",total_items")
    ceiling_s = time.monotonic() - started
    started = time.monotonic()
    download(MAILCHIMP_URL, key, before, 1, None)
    return ceiling_s, time.monotonic() - started, total


def _import(workdir: Path, env: dict, partition_range: str, profile: Path | None):
    """`dagster asset materialize` in a process of its own: (seconds, its own rusage)."""
    profiler = []
    if profile:
        profile.parent.mkdir(parents=True, exist_ok=True)
        profiler = [str(BIN / "py-spy"), "record", "--gil", "--rate", "50", "--format", "raw", "-o", str(profile), "--"]
    started = time.monotonic()
    with open(workdir / "importer.log", "w") as log:
        importer = subprocess.Popen(
            [*profiler, str(BIN / "dagster"), "asset", "materialize", "-m", "importer_dagster.definitions",
             "--select", "group:lists_00", "--partition-range", partition_range],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        )
        _, status, usage = os.wait4(importer.pid, 0)
    if status:
        raise RuntimeError((workdir / "importer.log").read_text()[-3000:])
    return time.monotonic() - started, usage
