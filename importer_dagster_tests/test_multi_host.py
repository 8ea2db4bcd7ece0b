"""Two worker hosts, each a network namespace, sharing one deployment over the network.

The daemon stays on the machine and hands each run's step to RabbitMQ; a Celery worker on either
host takes it. Each host has its own IMPORTER_STATE_DIR and reaches PostgreSQL, Redis, RabbitMQ,
the object store and both simulators only through its veth peer, as a second machine would.
Shown here: a tick spreads over both hosts and completes every window; a window imported on one
host exports again from its stored records on the other; kill -9 of a host mid-run loses and
duplicates no contact; and both hosts together keep an account within 10 Mailchimp connections.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from importer_dagster.core.history import SUCCEEDED, WindowRecord
from importer_dagster.core.stages import Stage
from importer_dagster.core.windows import horizon_start, partition_key, window_key_at, windows_between
from importer_dagster.dagster_internals import run_submitter
from importer_dagster.partitions import range_tags
from importer_dagster.resources import ImporterStorage
from importer_dagster.schedules import hourly_schedules
from importer_dagster.simulators.contacts import ContactsSimulator
from importer_dagster.simulators.mailchimp import MailchimpSimulator, fleet_key, fleet_world
from importer_dagster.throwaway_instance import stop_automation, throwaway_dagster_home
from importer_dagster.throwaway_object_store import object_store_environment

from . import hosts as machines
from .conftest import GROUP, REPO

pytestmark = pytest.mark.skipif(machines.unavailable() is not None, reason=str(machines.unavailable()))

BIN = Path(sys.executable).parent
ACCOUNTS, LISTS_PER_ACCOUNT, MEMBERS = 10, 20, 2400
"""200 lists; a list of 2,400 members changes about 50 of them an hour in the fleet world."""
CONTACTS_KEY = "multi-host-contacts-key"
NOW = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)
LATEST = window_key_at(NOW - timedelta(hours=1))
FIRST_TICK, KILL_TICK = (window_key_at(NOW - timedelta(hours=hours)) for hours in (3, 2))
"""The windows the first tick and the tick that loses a host import; every earlier one is history."""


SMALL_PAGES = {"resources": {"mailchimp": {"config": {"page_size": 100}}}}
"""Many pages a list, so that each run pages with all the connections it may have."""


def list_keys() -> list[str]:
    return [f"fleet{a}.{a * LISTS_PER_ACCOUNT + i:010x}" for a in range(ACCOUNTS) for i in range(LISTS_PER_ACCOUNT)]


@dataclass
class Cluster:
    workdir: Path
    hosts: list[machines.Host]
    environment: dict[str, str]
    """The machine's own: the daemon's and this test process's settings."""
    host_environments: dict[str, dict[str, str]]
    mailchimp: MailchimpSimulator
    contacts: ContactsSimulator
    instance: dg.DagsterInstance
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def log(self, host: machines.Host) -> Path:
        return self.workdir / f"{host.name}.log"

    def start_worker(self, host: machines.Host) -> None:
        log = self.log(host)
        already = log.read_text() if log.exists() else ""
        self.workers[host.name] = host.popen(
            [str(BIN / "importer-dagster"), "worker", "--name", host.name, "--concurrency", "1"],
            self.host_environments[host.name], log,
        )
        deadline = time.monotonic() + 120
        while " ready." not in log.read_text()[len(already):]:
            if self.workers[host.name].poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the worker on {host.name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)

    def ensure_workers(self) -> None:
        for host in self.hosts:
            worker = self.workers.get(host.name)
            if worker is None or worker.poll() is not None:
                self.start_worker(host)

    def submit(self, requests: list[dg.RunRequest]) -> list[str]:
        with run_submitter(self.instance, "importer_dagster.definitions") as submit:
            return [submit(request) for request in requests]

    def wait(self, run_ids: list[str], timeout_s: float = 600) -> list[dg.DagsterRun]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = self.instance.get_runs(dg.RunsFilter(run_ids=run_ids))
            if len(runs) == len(run_ids) and all(run.is_finished for run in runs):
                return runs
            time.sleep(1)
        logs = "\n".join(f"--- {host.name}\n{self.log(host).read_text()[-2000:]}" for host in self.hosts)
        raise AssertionError(f"runs did not finish in {timeout_s} s:\n{logs}")

    def wait_until_stepping(self, run_ids: list[str], timeout_s: float = 300) -> None:
        """Until every run's step has started: each is on a host, past its start-up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START) for run_id in run_ids):
                return
            time.sleep(0.5)
        raise AssertionError(f"the steps of {run_ids} did not start in {timeout_s} s")

    def executed_on(self, run_id: str) -> list[str]:
        """The worker hosts that took the run's step, in order: from the run's own engine events."""
        names = []
        for entry in self.instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            metadata = entry.dagster_event.engine_event_data.metadata
            if "Celery worker" in metadata:
                names.append(str(metadata["Celery worker"].value).split("@")[0])
        return names

    def step_span(self, run_id: str) -> tuple[float, float]:
        """When the run's step started and succeeded, as its events say."""
        start, end = (self.instance.all_logs(run_id, of_type=kind)[-1].timestamp
                      for kind in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS))
        return start, end

    def tick(self, latest: str) -> list[dg.RunRequest]:
        """Every group's schedule evaluated for the hour after `latest`, as the daemon evaluates it."""
        scheduled = datetime.strptime(latest, "%Y-%m-%d-%H:%M").replace(tzinfo=timezone.utc) + timedelta(hours=1, minutes=5)
        requests = []
        for schedule in hourly_schedules:
            context = dg.build_schedule_context(instance=self.instance, scheduled_execution_time=scheduled,
                                                resources={"storage": ImporterStorage()})
            result = schedule(context)
            requests += result if isinstance(result, list) else []
        return requests

    def changed(self, list_key: str, window: str) -> set[str]:
        """The external ids of the list's contacts whose last change falls in `window`."""
        start = datetime.strptime(window, "%Y-%m-%d-%H:%M").replace(tzinfo=timezone.utc)
        list_id = list_key.split(".")[1]
        return {f"{list_id}:{member}" for member, changed in self.mailchimp.members_truth(list_id).items()
                if start <= changed < start + timedelta(hours=1)}

    def imported(self, window: str) -> dict[str, Counter]:
        """Per list, how many times each of its contacts changed in `window` was imported."""
        counts: dict[str, Counter] = {}
        for key in list_keys():
            everything = self.contacts.import_counts(key.split(".")[0])
            counts[key] = Counter({external_id: everything[external_id] for external_id in self.changed(key, window)})
        return counts


def _routes(host: machines.Host, ports: list[int]) -> list[str]:
    return [f"{host.gateway}:{port}=127.0.0.1:{port}" for port in ports]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, object_store) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("multi-host")
    vhost = f"importer-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True,
                   capture_output=True)
    world = fleet_world(ACCOUNTS, LISTS_PER_ACCOUNT, MEMBERS, now=NOW)
    s3_port = int(object_store.endpoint.rsplit(":", 1)[1])
    accounts_file = workdir / "accounts.yaml"
    accounts_file.write_text("accounts:\n" + "".join(
        f"  - id: fleet{i}\n    mailchimp_api_key_env: MAILCHIMP_KEY_FLEET{i}\n    contacts_account: fleet{i}\n"
        for i in range(ACCOUNTS)))
    previous = dict(os.environ)
    try:
        with (throwaway_dagster_home(workdir, REPO / "deploy" / "dagster.yaml") as (home, pg_env),
              MailchimpSimulator(world) as mailchimp,
              ContactsSimulator(CONTACTS_KEY, db_path=workdir / "contacts.sqlite3") as contacts,
              machines.hosts(2) as hosts):
            mailchimp_port, contacts_port = (int(url.rsplit(":", 1)[1]) for url in (mailchimp.root_url, contacts.base_url))
            ports = [5432, 6379, 5672, s3_port, mailchimp_port, contacts_port]
            files_url = f"{object_store.bucket}/multi-host-{uuid.uuid4().hex[:8]}"

            def environment(address: str, state_dir: Path) -> dict[str, str]:
                return {
                    "PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(workdir),
                    **pg_env, "DAGSTER_PG_HOST": address,
                    **object_store_environment(f"http://{address}:{s3_port}"),
                    "IMPORTER_ACCOUNTS_FILE": str(accounts_file),
                    "IMPORTER_START_DATE": (NOW - timedelta(days=2)).strftime("%Y-%m-%d"),
                    "IMPORTER_STATE_DIR": str(state_dir),
                    "IMPORTER_FILES_URL": files_url,
                    "IMPORTER_DATABASE_URL": f"postgresql://postgres@{address}:5432/{pg_env['DAGSTER_PG_DB']}",
                    "IMPORTER_REDIS_URL": f"redis://{address}:6379/0",
                    "IMPORTER_CELERY_BROKER_URL": f"amqp://guest:guest@{address}:5672/{vhost}",
                    "IMPORTER_LISTS_PER_RUN": str(LISTS_PER_ACCOUNT),
                    "MAILCHIMP_BASE_URL": f"http://{address}:{mailchimp_port}/3.0",
                    "CONTACTS_API_URL": f"http://{address}:{contacts_port}",
                    "CONTACTS_API_KEY": CONTACTS_KEY,
                    **{f"MAILCHIMP_KEY_FLEET{i}": fleet_key(i) for i in range(ACCOUNTS)},
                }

            machine = environment("127.0.0.1", workdir / "daemon-state")
            os.environ.update(machine)
            host_environments = {host.name: environment(host.gateway, workdir / f"{host.name}-state") for host in hosts}
            with (machines.relay([route for host in hosts for route in _routes(host, ports)]),
                  dg.DagsterInstance.get() as instance):
                instance.add_dynamic_partitions(GROUP.lists_partitions.name, list_keys())
                seed_history(ImporterStorage(), FIRST_TICK)
                stop_automation(machine, REPO)
                daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "importer_dagster.definitions"],
                                          cwd=REPO, env=machine, stdout=(workdir / "daemon.log").open("w"),
                                          stderr=subprocess.STDOUT, start_new_session=True)
                cluster = Cluster(workdir, hosts, machine, host_environments, mailchimp, contacts, instance)
                try:
                    cluster.ensure_workers()
                    yield cluster
                finally:
                    daemon.terminate()
                    daemon.wait(timeout=60)
    finally:
        os.environ.clear()
        os.environ.update(previous)
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)


def seed_history(storage: ImporterStorage, first_to_import: str) -> None:
    """Every window of the horizon before `first_to_import` recorded as imported, so ticks import
    only the hours the tests name."""
    first = window_key_at(horizon_start(NOW))
    earlier = windows_between(first, first_to_import)[:-1]
    storage.history().restore([
        WindowRecord(key, window, SUCCEEDED, "seeded", 1, 0, 0, 0, 0, 0, None, NOW)
        for window in earlier for key in list_keys()
    ])


@pytest.fixture(scope="module")
def first_tick(cluster: Cluster) -> list[dg.DagsterRun]:
    requests = cluster.tick(FIRST_TICK)
    assert len(requests) == ACCOUNTS, "a run per account: IMPORTER_LISTS_PER_RUN is one account's lists"
    return cluster.wait(cluster.submit(requests))


def test_a_tick_for_200_lists_runs_on_both_hosts_and_completes_every_window(cluster: Cluster, first_tick):
    assert [run.status for run in first_tick] == [dg.DagsterRunStatus.SUCCESS] * ACCOUNTS
    hosts_per_run = {run.run_id: cluster.executed_on(run.run_id) for run in first_tick}
    assert all(len(names) == 1 for names in hosts_per_run.values()), hosts_per_run
    assert Counter(names[0] for names in hosts_per_run.values()).keys() == {"host-a", "host-b"}, hosts_per_run
    assert ImporterStorage().history().succeeded_at(list_keys(), FIRST_TICK) == set(list_keys())
    for list_key, counts in cluster.imported(FIRST_TICK).items():
        assert counts and set(counts.values()) == {1}, f"{list_key}: every contact imported exactly once"


def test_a_window_imported_on_one_host_exports_again_from_its_files_on_the_other(cluster: Cluster, first_tick):
    """Host A is stopped, change detection is made to forget the list, and exported_batches alone
    is materialized from the command line: host B reads A's records from the object store and
    sends them, and Mailchimp is not asked."""
    run = next(run for run in first_tick if cluster.executed_on(run.run_id) == ["host-a"])
    list_key = run.tags["dagster/asset_partition_range_start"].split("|")[0]
    key = partition_key(list_key, FIRST_TICK)
    with sa.create_engine(cluster.environment["IMPORTER_DATABASE_URL"]).begin() as connection:
        connection.execute(sa.text("DELETE FROM importer_sent_records WHERE list_key = :key"), {"key": list_key})
    cluster.workers["host-a"].terminate()
    cluster.workers["host-a"].wait(timeout=60)
    exported = GROUP.asset_keys[Stage.EXPORTED]

    again = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "importer_dagster.definitions",
         "--select", exported.to_user_string(), "--partition", key],
        cwd=REPO, env=cluster.environment, capture_output=True, text=True, timeout=600,
    )

    assert again.returncode == 0, again.stderr[-3000:]
    [export] = cluster.instance.get_runs(dg.RunsFilter(tags={"dagster/partition": key}))
    assert cluster.executed_on(export.run_id) == ["host-b"]
    materialization = cluster.instance.get_latest_materialization_event(exported)
    assert materialization.run_id == export.run_id
    assert materialization.asset_materialization.metadata["exported"].value == len(cluster.changed(list_key, FIRST_TICK))
    posted = [entry for entry in cluster.contacts.requests() if entry["correlation_id"] == export.run_id]
    assert sum(entry["records"] for entry in posted) == len(cluster.changed(list_key, FIRST_TICK))
    assert not any(entry["correlation_id"] == export.run_id for entry in cluster.mailchimp.requests)


def test_both_hosts_together_keep_an_account_within_ten_connections(cluster: Cluster):
    """Two runs over one account's lists, launched as the UI launches them (no account tag, so
    the run queue does not hold one back), each on its own host, each paging in parallel.

    1,200 members of each list change in the latest hour, which the other tests leave alone: 12
    pages a list at 100 members a page. Member pages are held until both steps have started, so
    the runs page at the same time however long either host takes to start its run."""
    cluster.ensure_workers()
    account = 3
    keys = [key for key in list_keys() if key.startswith(f"fleet{account}.")][:6]
    for key in keys:
        cluster.mailchimp.touch(key.split(".")[1], count=1200, at=NOW - timedelta(minutes=50),
                                merge_fields={"FNAME": "Budget"})
    cluster.mailchimp.faults.page_delay_s = 0.2
    cluster.mailchimp.faults.hold_pages = True
    try:
        run_ids = cluster.submit([
            dg.RunRequest(job_name=GROUP.job_name, run_config=SMALL_PAGES,
                          tags=range_tags(partition_key(half[0], LATEST), partition_key(half[-1], LATEST)))
            for half in (keys[:3], keys[3:])
        ])
        cluster.wait_until_stepping(run_ids)
        cluster.mailchimp.faults.hold_pages = False
        runs = cluster.wait(run_ids)
    finally:
        cluster.mailchimp.faults.hold_pages = False
        cluster.mailchimp.faults.page_delay_s = 0.0

    assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
    assert sorted(name for run_id in run_ids for name in cluster.executed_on(run_id)) == ["host-a", "host-b"]
    first, second = (cluster.step_span(run_id) for run_id in run_ids)
    assert first[0] < second[1] and second[0] < first[1], "the two hosts paged at the same time"
    key = fleet_key(account)
    assert cluster.mailchimp.rejected_over_limit[key] == 0
    assert cluster.mailchimp.max_in_flight[key] == 10, "the budget is used, and never exceeded"


def test_kill_9_of_a_host_mid_run_loses_and_duplicates_no_contact(cluster: Cluster):
    cluster.ensure_workers()
    host_a = cluster.hosts[0]
    cluster.mailchimp.faults.page_delay_s = 0.3
    try:
        run_ids = cluster.submit(cluster.tick(KILL_TICK))
        deadline = time.monotonic() + 120
        while not any("host-a" in cluster.executed_on(run_id) for run_id in run_ids):
            assert time.monotonic() < deadline, "host A never took a step"
            time.sleep(0.5)
        time.sleep(3)
        killed = host_a.kill_everything()
        cluster.mailchimp.faults.page_delay_s = 0.0
        runs = cluster.wait(run_ids)
    finally:
        cluster.mailchimp.faults.page_delay_s = 0.0

    assert killed
    assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * len(run_ids)
    taken_over = [run_id for run_id in run_ids if cluster.executed_on(run_id)[:1] == ["host-a"]]
    assert taken_over and all(cluster.executed_on(run_id)[-1] == "host-b" for run_id in taken_over)
    assert ImporterStorage().history().succeeded_at(list_keys(), KILL_TICK) == set(list_keys())
    for list_key, counts in cluster.imported(KILL_TICK).items():
        assert counts and set(counts.values()) == {1}, f"{list_key}: every contact imported exactly once"
