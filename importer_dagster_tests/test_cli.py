"""The commands a user types: `importer-dagster`, `dagster job execute`, `dagster asset materialize`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from importer_dagster.core.accounts import DEMO_ACCOUNTS_FILE

from .conftest import (
    GROUP,
    ACME_KEY,
    ACME_LIST,
    ACME_SMALL_LIST,
    CONTACTS_KEY,
    IMPORT_JOB,
    LISTS_PARTITIONS_NAME,
    GLOBEX_LIST,
    NOW,
    free_ports,
    last_closed_window,
    window_key,
)

BIN = Path(sys.executable).parent


@pytest.fixture
def dagster_home(tmp_path, importer_env):
    home = tmp_path / "dagster_home"
    home.mkdir()
    return home


def run(command: list[str], home: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, **kwargs)


def registered_lists(home: Path) -> list[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_dynamic_partitions(LISTS_PARTITIONS_NAME)


def test_discover_registers_every_allowed_list_once(dagster_home):
    first = run([str(BIN / "importer-dagster"), "discover"], dagster_home)
    assert first.returncode == 0, first.stderr
    expected = {f"acme.{ACME_LIST}", f"acme.{ACME_SMALL_LIST}", f"globex.{GLOBEX_LIST}"}
    added = [line.split() for line in first.stdout.splitlines() if line.startswith("added ")]
    assert {words[1] for words in added} == expected and {words[-1] for words in added} == {GROUP.name}
    assert set(registered_lists(dagster_home)) == expected

    again = run([str(BIN / "importer-dagster"), "discover"], dagster_home)
    assert again.returncode == 0
    assert "0 list(s) added, 3 already registered" in again.stdout
    assert sorted(registered_lists(dagster_home)) == sorted(expected)


def test_discover_reports_a_broken_account_in_one_line_and_keeps_the_others(dagster_home, monkeypatch):
    monkeypatch.setenv("TEST_MAILCHIMP_KEY_GLOBEX", "ffffffffffffffffffffffffffffffff-us1")
    result = run([str(BIN / "importer-dagster"), "discover"], dagster_home)
    assert result.returncode == 1
    assert f"added acme.{ACME_LIST}" in result.stdout
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "account 'globex'" in error and "401" in error
    assert "ffffffff" not in result.stderr


def test_dagster_job_execute_imports_a_partition(dagster_home, contacts_sim):
    run([str(BIN / "importer-dagster"), "discover"], dagster_home)
    partition = f"acme.{ACME_SMALL_LIST}|{last_closed_window()}"
    result = run(
        [str(BIN / "dagster"), "job", "execute", "-m", "importer_dagster.definitions", "-j", IMPORT_JOB,
         "--tags", json.dumps({"dagster/partition": partition})],
        dagster_home,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RUN_SUCCESS" in result.stderr + result.stdout
    assert contacts_sim.imports("acme-contacts"), "contacts must have arrived"
    assert all(row["external_id"].startswith(f"{ACME_SMALL_LIST}:") for row in contacts_sim.imports("acme-contacts"))


def test_concurrent_cli_runs_share_one_ten_connection_budget(dagster_home, mailchimp_sim):
    run([str(BIN / "importer-dagster"), "discover"], dagster_home)
    mailchimp_sim.faults.page_delay_s = 0.1
    config = json.dumps({"resources": {"mailchimp": {"config": {"page_size": 10}}}})
    processes = [
        subprocess.Popen(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "importer_dagster.definitions", "--select", f"group:{GROUP.name}",
             "--partition", f"acme.{ACME_LIST}|{window_key(NOW - timedelta(hours=hours))}", "--config-json", config],
            env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for hours in (1, 2, 3)
    ]
    outcomes = [(process.wait(timeout=300), process.stderr.read()) for process in processes]
    assert all(code == 0 for code, _ in outcomes), [err[-2000:] for _, err in outcomes]
    assert mailchimp_sim.max_in_flight[ACME_KEY] == 10
    assert mailchimp_sim.rejected_over_limit[ACME_KEY] == 0


def test_a_mistake_gets_one_line_not_a_traceback(dagster_home, monkeypatch, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("accounts:\n  - id: acme\n    mailchimp_api_key_env: K\n    contacts_account: c\n    colour: red\n")
    monkeypatch.setenv("IMPORTER_ACCOUNTS_FILE", str(bad))
    result = run([str(BIN / "importer-dagster"), "discover"], dagster_home)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: accounts file {bad}: entry 0 (id 'acme'): colour: unknown key"
    assert "Traceback" not in result.stderr
    assert ACME_KEY not in result.stderr


def test_dead_letters_are_listed_then_replayed_in_a_new_run_keeping_history(dagster_home, mailchimp_sim, contacts_sim):
    run([str(BIN / "importer-dagster"), "discover"], dagster_home)
    partition = f"acme.{ACME_LIST}|{last_closed_window()}"
    window = partition.split("|")[1]
    members = sorted(m for m, c in mailchimp_sim.members_truth(ACME_LIST).items() if c.strftime("%Y-%m-%d-%H:00") == window)
    rejected = [f"{ACME_LIST}:{member}" for member in members[:4]]
    contacts_sim.faults.reject_external_ids = rejected
    first = run([str(BIN / "dagster"), "asset", "materialize", "-m", "importer_dagster.definitions", "--select", f"group:{GROUP.name}",
                 "--partition", partition], dagster_home)
    assert first.returncode == 0, first.stderr[-2000:]

    listed = run([str(BIN / "importer-dagster"), "dead-letters", "--list", f"acme.{ACME_LIST}"], dagster_home)
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 4 and all("export" in line and "rejected by rule" in line and "open" in line for line in lines)

    contacts_sim.faults.reject_external_ids = []
    replay = run([str(BIN / "importer-dagster"), "dead-letters", "--replay", "--account", "acme"], dagster_home)

    assert replay.returncode == 0, replay.stderr[-2000:]
    assert f"{partition}\treplayed 4, exported 4, still dead 0" in replay.stdout
    arrived = {row["external_id"] for row in contacts_sim.imports("acme-contacts")}
    assert set(rejected) <= arrived
    assert run([str(BIN / "importer-dagster"), "dead-letters"], dagster_home).stdout == ""
    history = run([str(BIN / "importer-dagster"), "dead-letters", "--all"], dagster_home).stdout.strip().splitlines()
    replay_run = replay.stdout.strip().splitlines()[-1].split()[2]
    assert len(history) == 4 and all(f"resolved by {replay_run}" in line for line in history)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert instance.get_run_by_id(replay_run).job_name == "replay_dead_letters_job"


def test_no_key_reaches_the_event_log_compute_logs_or_run_config(dagster_home, contacts_sim):
    run([str(BIN / "importer-dagster"), "discover"], dagster_home)
    result = run(
        [str(BIN / "dagster"), "job", "execute", "-m", "importer_dagster.definitions", "-j", IMPORT_JOB,
         "--tags", json.dumps({"dagster/partition": f"acme.{ACME_LIST}|{last_closed_window()}"})],
        dagster_home,
    )
    assert result.returncode == 0
    from .conftest import CONTACTS_KEY, GLOBEX_KEY

    secrets = [ACME_KEY, GLOBEX_KEY, CONTACTS_KEY]
    written = [path for path in dagster_home.rglob("*") if path.is_file()]
    assert any("compute_logs" in str(path) for path in written), "compute logs must exist to be scanned"
    for path in written:
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, f"{secret[:4]}… found in {path}"
    for secret in secrets:
        assert secret not in result.stdout + result.stderr
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for dagster_run in instance.get_runs():
            assert not any(secret in json.dumps(dagster_run.run_config) for secret in secrets)


def test_a_future_start_date_is_one_line_from_the_cli(dagster_home, monkeypatch):
    monkeypatch.setenv("IMPORTER_START_DATE", "2999-01-01")
    result = run([str(BIN / "importer-dagster"), "discover"], dagster_home)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: IMPORTER_START_DATE=2999-01-01 is in the future: no window would exist yet"
    assert "Traceback" not in result.stderr


def test_help_lists_every_command_and_every_option_says_what_it_does(dagster_home):
    from importer_dagster.cli import build_parser

    listing = run([str(BIN / "importer-dagster"), "--help"], dagster_home)
    assert listing.returncode == 0
    for command in ("discover", "backfill-failed", "dead-letters", "demo", "simulate-mailchimp", "simulate-contacts"):
        assert command in listing.stdout
    parser = build_parser()
    [commands] = [action for action in parser._actions if action.dest == "command"]
    for name, sub in commands.choices.items():
        assert sub.description, name
        for action in sub._actions:
            if action.dest not in ("help", "simulator_args"):
                assert action.help, f"{name} {action.option_strings}"


def test_an_unset_key_variable_is_a_mistake_exit_2(dagster_home, monkeypatch):
    monkeypatch.delenv("TEST_MAILCHIMP_KEY_GLOBEX")
    result = run([str(BIN / "importer-dagster"), "discover"], dagster_home)
    assert result.returncode == 2
    assert "error: account 'globex': mailchimp_api_key_env: environment variable TEST_MAILCHIMP_KEY_GLOBEX is not set" in result.stderr
    assert f"added acme.{ACME_LIST}" in result.stdout, "the other accounts are still discovered"


def test_without_an_accounts_file_every_command_refuses_in_one_line(dagster_home, monkeypatch):
    monkeypatch.delenv("IMPORTER_ACCOUNTS_FILE")
    for command in (["discover"], ["dead-letters", "--replay"]):
        result = run([str(BIN / "importer-dagster"), *command], dagster_home)
        assert result.returncode == 2, command
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: IMPORTER_ACCOUNTS_FILE is not set: point it at the accounts file"), command


def test_settings_shows_every_value_and_refuses_a_wrong_one(dagster_home, monkeypatch):
    good = run([str(BIN / "importer-dagster"), "settings"], dagster_home)
    assert good.returncode == 0, good.stdout
    rows = {line.split()[0]: line for line in good.stdout.splitlines()}
    assert {"IMPORTER_ACCOUNTS_FILE", "IMPORTER_MAX_INVALID_SHARE", "CONTACTS_API_KEY", "TEST_MAILCHIMP_KEY_ACME"} <= set(rows)
    assert rows["IMPORTER_MAX_INVALID_SHARE"].split()[1:4] == ["unset", "(default", "0.2)"]
    assert rows["CONTACTS_API_KEY"].split()[1] == "set" and CONTACTS_KEY not in good.stdout

    monkeypatch.setenv("IMPORTER_MAX_INVALID_SHARE", "5")
    bad = run([str(BIN / "importer-dagster"), "settings"], dagster_home)
    assert bad.returncode == 2
    assert "IMPORTER_MAX_INVALID_SHARE='5' must be a share between 0 and 1" in bad.stdout


def test_dagster_asset_materialize_refuses_an_unknown_partition_before_a_run_exists(dagster_home):
    run([str(BIN / "importer-dagster"), "discover"], dagster_home)
    for key in (f"acme.{ACME_LIST}|garbage", f"acme.ccccccccc7|{last_closed_window()}"):
        result = run([str(BIN / "dagster"), "asset", "materialize", "-m", "importer_dagster.definitions",
                      "--select", f"group:{GROUP.name}", "--partition", key], dagster_home)
        assert result.returncode != 0 and key in result.stderr
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert instance.get_runs() == []


def test_the_demos_env_sh_puts_the_commands_on_path_and_names_every_setting(tmp_path):
    ports = [str(port) for port in free_ports(4)]
    demo = subprocess.Popen(
        [str(BIN / "importer-dagster"), "demo", "--no-dagster", "--port", ports[0], "--mailchimp-port", ports[1],
         "--contacts-port", ports[2], "--alerts-port", ports[3]],
        cwd=tmp_path, stdout=subprocess.PIPE, text=True,
    )
    try:
        for line in demo.stdout:
            if "Simulators running" in line:
                break
        bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        shell = subprocess.run(
            ["bash", "-c", "source .demo/env.sh && command -v dagster importer-dagster && importer-dagster discover"],
            cwd=tmp_path, env=bare, capture_output=True, text=True, timeout=120,
        )
    finally:
        demo.terminate()
        demo.wait(timeout=30)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines()[:2] == [str(BIN / "dagster"), str(BIN / "importer-dagster")]
    assert "3 list(s) added" in shell.stdout
    assert f"export IMPORTER_ACCOUNTS_FILE={DEMO_ACCOUNTS_FILE}" in (tmp_path / ".demo" / "env.sh").read_text()


def test_upgrade_moves_the_lists_and_windows_of_the_layout_before_list_groups(dagster_home):
    from importer_dagster.upgrade import LEGACY_EXPORTED, LEGACY_LISTS

    list_key, window = f"acme.{ACME_LIST}", last_closed_window()
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.add_dynamic_partitions(LEGACY_LISTS, [list_key])
        instance.report_runless_asset_event(dg.AssetMaterialization(
            LEGACY_EXPORTED, partition=f"{list_key}|{window}",
            metadata={"fetched": 7, "exported": 6, "skipped": 0, "rejected": 1, "dead_lettered": 0},
        ))

    upgraded = run([str(BIN / "importer-dagster"), "upgrade"], dagster_home)
    history = run([str(BIN / "importer-dagster"), "history", "--list", list_key], dagster_home)

    assert upgraded.returncode == 0, upgraded.stderr
    assert "1 list(s) moved into list groups, 1 window(s) recorded in the history (0 of them failed)" in upgraded.stdout
    assert registered_lists(dagster_home) == [list_key]
    assert history.stdout.splitlines()[1].split("\t")[:6] == [window, "succeeded", "7", "6", "0", "1"]
