"""Fault injection: nothing lost, nothing duplicated, whatever the APIs do.

Every scenario imports one window over real HTTP with a PostgreSQL-backed Dagster instance, then
reconciles: the simulator's contacts for the window are exactly the imported ones plus the
dead-lettered ones, and no contact was imported twice. Run alone with `pytest -m faults`.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from importer_dagster.core.windows import decode_partition_key

from .conftest import GROUP, ACME_LIST, IMPORT_ASSETS, fast_resources, last_closed_window
from .fixtures import REPO

pytestmark = pytest.mark.faults
BIN = Path(sys.executable).parent


def window_members(simulator, list_id: str, key: str) -> set[str]:
    window = decode_partition_key(f"acme.{list_id}|{key}")
    return {member for member, changed in simulator.members_truth(list_id).items() if window.contains(changed)}


def reconcile(mailchimp_sim, contacts_sim, storage, key: str) -> tuple[Counter, set[str]]:
    imported = Counter(
        row["external_id"].split(":", 1)[1]
        for row in contacts_sim.imports("acme-contacts")
        if row["external_id"].startswith(f"{ACME_LIST}:")
    )
    dead = {letter.member_id for letter in storage.dead_letters().rows(list_key=f"acme.{ACME_LIST}", window=key)}
    assert imported, "the window must not be empty for the scenario to mean anything"
    assert max(imported.values()) == 1, "a contact was imported twice"
    assert not set(imported) & dead, "a contact is both imported and dead-lettered"
    assert set(imported) | dead == window_members(mailchimp_sim, ACME_LIST, key), "a contact was lost"
    return imported, dead


@pytest.fixture
def run_window(postgres_instance, importer_env, contacts_sim):
    def run(key: str, **mailchimp_settings) -> dg.ExecuteInProcessResult:
        resources = fast_resources(importer_env["IMPORTER_STATE_DIR"], contacts_sim.base_url, **mailchimp_settings)
        return dg.materialize(
            IMPORT_ASSETS, partition_key=f"acme.{ACME_LIST}|{key}", instance=postgres_instance, resources=resources
        )

    return run


@pytest.mark.parametrize(
    ("faults", "settings"),
    [
        ({"error_rate": 0.2}, {}),
        ({"burst_429": 6, "bodyless_403": 3}, {}),
        ({"slow_pages": 2, "slow_page_s": 3.0}, {"read_timeout_s": 1.0}),
        ({"malformed_json": 3}, {}),
        ({"malformed_member_rate": 0.1}, {}),
    ],
    ids=["5xx-on-20pct", "429-bursts-and-bodyless-403", "pages-slower-than-timeout", "malformed-json", "bad-members"],
)
def test_mailchimp_faults(run_window, mailchimp_sim, contacts_sim, importer_env, faults, settings):
    key = last_closed_window()
    for name, value in faults.items():
        setattr(mailchimp_sim.faults, name, value)

    result = run_window(key, page_size=50, **settings)

    assert result.success
    _, dead = reconcile(mailchimp_sim, contacts_sim, fast_resources(importer_env["IMPORTER_STATE_DIR"], "")["storage"], key)
    assert bool(dead) == ("malformed_member_rate" in faults)


@pytest.mark.parametrize(
    "faults",
    [{"burst_503": 3, "burst_429": 2, "error_rate": 0.2}, {"lose_response": 2}],
    ids=["503s-and-429s", "response-lost-after-import"],
)
def test_contacts_api_faults(run_window, mailchimp_sim, contacts_sim, importer_env, faults):
    key = last_closed_window()
    for name, value in faults.items():
        setattr(contacts_sim.faults, name, value)

    assert run_window(key).success

    storage = fast_resources(importer_env["IMPORTER_STATE_DIR"], "")["storage"]
    imported, dead = reconcile(mailchimp_sim, contacts_sim, storage, key)
    assert not dead
    if "lose_response" in faults:
        assert any(request["replayed"] for request in contacts_sim.requests()), "the retry got the stored answer"


def test_per_record_rejections_are_dead_letters(run_window, mailchimp_sim, contacts_sim, importer_env):
    key = last_closed_window()
    members = sorted(window_members(mailchimp_sim, ACME_LIST, key))
    contacts_sim.faults.reject_external_ids = [f"{ACME_LIST}:{member}" for member in members[::7]]

    assert run_window(key).success

    storage = fast_resources(importer_env["IMPORTER_STATE_DIR"], "")["storage"]
    _, dead = reconcile(mailchimp_sim, contacts_sim, storage, key)
    assert dead == set(members[::7])


def test_a_run_killed_mid_export_then_rerun_imports_each_contact_once(
    postgres_home, postgres_instance, mailchimp_sim, contacts_sim, importer_env
):
    home, pg_env = postgres_home
    key = last_closed_window()
    contacts_sim.faults.delay_s = 0.3
    command = [
        str(BIN / "dagster"), "asset", "materialize", "-m", "importer_dagster.definitions", "--select", f"group:{GROUP.name}",
        "--partition", f"acme.{ACME_LIST}|{key}",
        "--config-json", json.dumps({"resources": {"contacts_api": {"config": {"batch_size": 10, "parallelism": 2}}}}),
    ]
    env = {**os.environ, **pg_env}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(contacts_sim.imports("acme-contacts")) < 30 and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    _, errors = process.communicate()
    partial = len(contacts_sim.imports("acme-contacts"))
    assert 0 < partial < len(window_members(mailchimp_sim, ACME_LIST, key)), f"not killed mid-export: {errors[-2000:]}"

    contacts_sim.faults.delay_s = 0
    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    assert rerun.returncode == 0, rerun.stderr[-3000:]
    storage = fast_resources(importer_env["IMPORTER_STATE_DIR"], "")["storage"]
    reconcile(mailchimp_sim, contacts_sim, storage, key)
