"""Partition scale: a year of hourly imports at thousands of lists, and what every view then costs.

The instance is seeded with what a year leaves under the design (`year_seed`), at the worst hour
of the day: after midnight, with the day that just left the horizon still waiting for the
compaction. Then each figure the scaling issue sets a target for is measured the way it is met in
production: the definitions loading, every list group's schedule tick and each sensor (first and
second evaluation), the UI's partition-status query sent to a running dagster-webserver as its UI
sends it (after tonight's compaction, which rebuilds Dagster's status caches; cold, right after a
list is registered; and warm), the compaction itself, and the webserver's and the daemon's memory.
"""

import contextlib
import cProfile
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

from common import BIN, REPO, fleet_environment, fleet_list_keys, start_mailchimp, stop

UI_PORT = 13001
DAEMON_WATCH_S = 150
"""Long enough for each sensor of the daemon to evaluate at least twice."""

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

DEFINITIONS_LOAD = """
import time
started = time.monotonic()
from importer_dagster.definitions import defs
defs.get_repository_def().load_all_definitions()
print(round(time.monotonic() - started, 2))
"""


def partition_scale(lists: int, accounts: int, days: int, groups: int, profile_dir: Path | None = None) -> dict:
    from importer_dagster.throwaway_instance import throwaway_dagster_home

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        with throwaway_dagster_home(workdir, REPO / "deploy" / "dagster.yaml", prefix="importer_bench") as (home, pg_env):
            now = datetime.now(timezone.utc)
            os.environ.update(fleet_environment(workdir, pg_env, accounts, (now - timedelta(days=days)).strftime("%Y-%m-%d")))
            os.environ["IMPORTER_LIST_GROUPS"] = str(groups)
            env = {**os.environ}
            figures = {"lists": lists, "accounts": accounts, "days": days, "groups": groups}
            figures["definitions_load_s"] = float(subprocess.run(
                [sys.executable, "-c", DEFINITIONS_LOAD], cwd=REPO, env=env, check=True, capture_output=True, text=True,
            ).stdout.strip())
            mailchimp = start_mailchimp(workdir, env, "--world", "fleet", "--accounts", str(accounts),
                                        "--lists-per-account", str(lists // accounts))
            try:
                figures |= _seed(fleet_list_keys(accounts, lists // accounts), now)
                print("measuring the schedules and sensors", flush=True)
                figures |= _automation(now, profile_dir)
                print("measuring the partition views, and the compaction", flush=True)
                figures |= _webserver(env, now)
                print("measuring the daemon", flush=True)
                figures |= _daemon(env)
                return figures
            finally:
                stop(mailchimp)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _timed(figures: dict, label: str, call, profile_dir: Path | None = None):
    profiler = cProfile.Profile() if profile_dir else None
    started = time.monotonic()
    with profiler or contextlib.nullcontext():
        result = call()
    figures[label] = round(time.monotonic() - started, 2)
    if profiler:
        profile_dir.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(profile_dir / f"{label[:-2]}.prof")
    return result


def _seed(list_keys: list[str], now: datetime) -> dict:
    import dagster as dg
    import year_seed

    from importer_dagster.core.windows import horizon_start, latest_closed_window, window_key_at, windows_between
    from importer_dagster.partitions import GROUPS, history_days
    from importer_dagster.resources import ImporterStorage
    from importer_dagster.schedules import segments

    storage = ImporterStorage()
    horizon = horizon_start(now)
    waiting = horizon - timedelta(days=1)
    figures: dict = {}
    with dg.DagsterInstance.get() as instance:
        started = time.monotonic()
        assigned = year_seed.register(instance, list_keys)
        windows = windows_between(window_key_at(waiting), latest_closed_window(now))
        print(f"seeding {len(windows)} hours of runs for {len(list_keys)} lists in {len(assigned)} groups", flush=True)
        storage.history()
        seeded = year_seed.seed_windows_in_parallel(assigned, windows)
        days = [day for day in history_days.get_partition_keys() if day < waiting.strftime("%Y-%m-%d")]
        runs_per_day = 24 * sum(len(list(segments(keys, set()))) for keys in assigned.values())
        print(f"seeding {len(days)} compacted days", flush=True)
        year_seed.seed_compacted_days(instance, storage, list_keys, days, runs_per_day, seeded)
        figures["seeding_s"] = round(time.monotonic() - started, 1)
        figures["max_partitions_per_asset"] = max(
            len(group.partitions.get_partition_keys(dynamic_partitions_store=instance)) for group in GROUPS)
        figures["history_partitions"] = history_days.get_num_partitions()
    figures |= {"runs": seeded.runs, "materializations": seeded.materializations, "events": seeded.events,
                "history_rows": seeded.history_rows, "history_files": seeded.history_files,
                "history_file_rows": seeded.history_file_rows, "instance_gb": _database_gb()}
    return figures


def _database_gb() -> float:
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname=os.environ["DAGSTER_PG_DB"]) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT pg_database_size(current_database())")
        return round(cursor.fetchone()[0] / 2**30, 2)


def _automation(now: datetime, profile_dir: Path | None) -> dict:
    """Every schedule and sensor, evaluated as the daemon evaluates them, twice: cold, then warm."""
    import dagster as dg

    from importer_dagster.compaction import compaction_schedule
    from importer_dagster.resources import ImporterStorage, MailchimpResource
    from importer_dagster.schedules import hourly_schedules
    from importer_dagster.sensors import alert_sensor, failed_partitions_sensor, freshness_sensor, list_discovery_sensor

    figures: dict = {}
    storage = ImporterStorage()
    tick_time = now.replace(minute=5, second=0, microsecond=0)
    with dg.DagsterInstance.get() as instance:
        for round_name in ("cold", "warm"):
            ticks, run_requests = [], 0
            for schedule in hourly_schedules:
                context = dg.build_schedule_context(instance=instance, resources={"storage": storage},
                                                    scheduled_execution_time=tick_time)
                started = time.monotonic()
                result = schedule(context)
                ticks.append(time.monotonic() - started)
                run_requests += len(result) if isinstance(result, list) else 0
            figures[f"schedule_tick_max_{round_name}_s"] = round(max(ticks), 2)
            figures[f"schedule_ticks_total_{round_name}_s"] = round(sum(ticks), 2)
        figures["schedule_runs_per_hour"] = run_requests
        context = dg.build_schedule_context(instance=instance, resources={"storage": storage},
                                            scheduled_execution_time=now.replace(hour=0, minute=30))
        _timed(figures, "compaction_schedule_s", lambda: compaction_schedule(context))
        sensors = (
            ("list_discovery_sensor", list_discovery_sensor, {"mailchimp": MailchimpResource(), "storage": storage}),
            ("failed_partitions_sensor", failed_partitions_sensor, {"storage": storage}),
            ("alert_sensor", alert_sensor, {}),
            ("freshness_sensor", freshness_sensor, {"storage": storage}),
        )
        for name, sensor, resources in sensors:
            cursor = None
            for round_name in ("first", "second"):
                context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor)
                result = _timed(figures, f"{name}_{round_name}_s", lambda: sensor(context), profile_dir)
                cursor = result.cursor if isinstance(result, dg.SensorResult) and result.cursor else context.cursor
    return figures


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_children(int(child))]
    return found


def _peak_rss(process: subprocess.Popen) -> tuple[float, float]:
    """(the process's peak RSS, the largest of its children's: the code server it runs the code in)."""
    return _vm_hwm_mb(process.pid), max([_vm_hwm_mb(child) for child in _children(process.pid)] or [0.0])


def _webserver(env: dict, now: datetime) -> dict:
    """The partition view of every asset, sent to a running webserver as its UI sends it.

    First after tonight's compaction, which rebuilt every status cache (the horizon had moved);
    then cold, right after a list is registered in every group, before any run has rebuilt the
    caches for it (the worst a user can meet); then warm.
    """
    import dagster as dg

    from importer_dagster.asset_keys import HISTORY_KEY
    from importer_dagster.partitions import GROUPS

    figures: dict = {}
    webserver = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-m", "importer_dagster.definitions", "-h", "127.0.0.1", "-p", str(UI_PORT)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_webserver()
        figures |= _compaction(now)
        keys = [key for group in GROUPS for key in group.asset_keys.values()] + [HISTORY_KEY]
        _partition_views(keys, "after_compaction", figures)
        with dg.DagsterInstance.get() as instance:
            for group in GROUPS:
                instance.add_dynamic_partitions(group.lists_partitions.name, [f"fleet0.ffffff{group.number:04x}"])
        _partition_views(keys, "cold", figures)
        _partition_views(keys, "warm", figures)
        figures["webserver_rss_mb"], figures["webserver_code_server_rss_mb"] = _peak_rss(webserver)
        return figures
    finally:
        stop(webserver)


def _partition_views(keys: list, round_name: str, figures: dict) -> None:
    seconds = {}
    for key in keys:
        started = time.monotonic()
        answer = requests.post(f"http://127.0.0.1:{UI_PORT}/graphql", timeout=600, json={
            "query": PARTITION_HEALTH_QUERY, "variables": {"assetKey": {"path": key.path}}})
        seconds[key.to_user_string()] = time.monotonic() - started
        answer.raise_for_status()
        if "errors" in answer.json():
            raise RuntimeError(answer.json()["errors"])
    slowest = max(seconds, key=seconds.get)
    figures[f"ui_partition_view_max_{round_name}_s"] = round(seconds[slowest], 2)
    figures[f"ui_partition_view_median_{round_name}_s"] = round(sorted(seconds.values())[len(seconds) // 2], 2)
    figures[f"ui_partition_view_slowest_{round_name}"] = slowest


def _wait_for_webserver() -> None:
    for _ in range(240):
        try:
            requests.get(f"http://127.0.0.1:{UI_PORT}/server_info", timeout=2).raise_for_status()
            return
        except requests.RequestException:
            time.sleep(1)
    raise RuntimeError("dagster-webserver did not answer within 4 minutes")


def _daemon(env: dict) -> dict:
    """The daemon on the seeded instance, its sensors evaluating, for DAEMON_WATCH_S."""
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "importer_dagster.definitions"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(DAEMON_WATCH_S)
        daemon_mb, code_server_mb = _peak_rss(daemon)
        return {"daemon_rss_mb": daemon_mb, "daemon_code_server_rss_mb": code_server_mb}
    finally:
        stop(daemon)


def _compaction(now: datetime) -> dict:
    """Tonight's compaction of the day that left the horizon, as its run does it: the day moved to
    `import_history`, its runs deleted, then every group's status cache built from scratch."""
    import logging

    import dagster as dg

    from importer_dagster.compaction import compact, refresh_status_caches
    from importer_dagster.core.windows import horizon_start
    from importer_dagster.resources import ImporterStorage

    storage = ImporterStorage()
    log = logging.getLogger("bench")
    figures: dict = {}
    with dg.DagsterInstance.get() as instance:
        runs_before = instance.get_runs_count()
        waiting = storage.history().days_before(horizon_start(now).strftime("%Y-%m-%d"))
        _timed(figures, "compaction_s", lambda: list(compact(instance, storage, waiting, log, now)))
        figures["compaction_runs_deleted"] = runs_before - instance.get_runs_count()
        _timed(figures, "compaction_status_caches_s", lambda: refresh_status_caches(instance, log))
    figures["instance_gb_after_compaction"] = _database_gb()
    return figures
