import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from importer_dagster.core.settings import ConfigError
from importer_dagster.core.history import FAILED, WindowRecord
from importer_dagster.core.windows import FIRST_WINDOW_KEY, horizon_start, latest_closed_window, window_key_at
from importer_dagster.resources import MailchimpResource
from importer_dagster.schedules import ACCOUNT_TAG
from importer_dagster.sensors import AUTO_RETRY_TAG, alert_sensor, failed_partitions_sensor, list_discovery_sensor

from .conftest import (
    ACCOUNTS_YAML,
    ACME_LIST,
    ACME_SMALL_LIST,
    GLOBEX_LIST,
    GROUP,
    IMPORT_ASSETS,
    LISTS_PARTITIONS_NAME,
    Importer,
    last_closed_window,
)


def discover(importer: Importer, cursor=None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=importer.instance,
        cursor=cursor,
        resources={"mailchimp": MailchimpResource(retry_backoff_s=0.01), "storage": importer.storage},
    )
    return list_discovery_sensor(context)


def test_discovery_registers_new_lists_and_requests_each_history_in_one_run(importer: Importer):
    importer.instance.delete_dynamic_partition(LISTS_PARTITIONS_NAME, f"acme.{ACME_SMALL_LIST}")
    importer.instance.delete_dynamic_partition(LISTS_PARTITIONS_NAME, f"globex.{GLOBEX_LIST}")

    result = discover(importer)

    [add] = result.dynamic_partitions_requests
    assert sorted(add.partition_keys) == [f"acme.{ACME_SMALL_LIST}", f"globex.{GLOBEX_LIST}"]
    last = latest_closed_window(datetime.now(timezone.utc))
    assert sorted(
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"], r.tags[ACCOUNT_TAG])
        for r in result.run_requests
    ) == [
        (f"acme.{ACME_SMALL_LIST}|{FIRST_WINDOW_KEY}", f"acme.{ACME_SMALL_LIST}|{last}", "acme"),
        (f"globex.{GLOBEX_LIST}|{FIRST_WINDOW_KEY}", f"globex.{GLOBEX_LIST}|{last}", "globex"),
    ]
    assert all(r.run_key.startswith("history:") for r in result.run_requests)

    importer.instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, list(add.partition_keys))
    again = discover(importer, result.cursor)
    assert not again.run_requests and not again.dynamic_partitions_requests


def test_a_list_that_disappears_is_retired_with_its_history_and_comes_back(importer: Importer, mailchimp_sim):
    [acme] = [account for account in mailchimp_sim.world.accounts if any(l.id == ACME_LIST for l in account.lists)]
    [news] = [l for l in acme.lists if l.id == ACME_LIST]
    news.archived = True

    discover(importer)

    assert f"acme.{ACME_LIST}" in importer.storage.retired_lists().keys()
    assert f"acme.{ACME_LIST}" in importer.instance.get_dynamic_partitions(LISTS_PARTITIONS_NAME)

    news.archived = False
    discover(importer)
    assert importer.storage.retired_lists().keys() == {}


def retry_sensor(importer: Importer, cursor=None) -> dg.SensorResult:
    return failed_partitions_sensor(
        dg.build_sensor_context(instance=importer.instance, cursor=cursor, resources={"storage": importer.storage})
    )


def test_failed_windows_are_retried_alone_then_left_failed_with_one_alert(importer: Importer, webhook, monkeypatch):
    monkeypatch.setenv("IMPORTER_RETRY_COOLDOWN_S", "0")
    monkeypatch.setenv("IMPORTER_MAX_AUTO_RETRIES", "2")
    missing = "ccccccccc9"
    importer.instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, [f"acme.{missing}"])
    failing = f"acme.{missing}|{last_closed_window()}"
    assert not importer.materialize(failing, raise_on_error=False).success
    importer.materialize(f"acme.{ACME_LIST}|{last_closed_window()}")

    cursor = None
    for attempt in (1, 2):
        result = retry_sensor(importer, cursor)
        [request] = result.run_requests
        assert request.partition_key == failing
        assert request.tags == {ACCOUNT_TAG: "acme", AUTO_RETRY_TAG: str(attempt)}
        assert not importer.materialize(failing, raise_on_error=False, tags=request.tags).success
        cursor = result.cursor

    assert webhook.messages == []
    exhausted = retry_sensor(importer, cursor)
    assert exhausted.run_requests == []
    [message] = webhook.messages
    assert "after 2 automatic retries" in message["text"] and f"acme.{missing}" in message["text"]
    assert retry_sensor(importer, exhausted.cursor).run_requests == []
    assert len(webhook.messages) == 1


def test_run_failures_and_error_checks_raise_one_grouped_alert(importer: Importer, mailchimp_sim, webhook):
    context = dg.build_sensor_context(instance=importer.instance)
    alert_sensor(context)
    missing = ["ccccccccc8", "ccccccccc9"]
    importer.instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, [f"acme.{m}" for m in missing])
    runs = [importer.materialize(f"acme.{m}|{last_closed_window()}", raise_on_error=False) for m in missing]
    mailchimp_sim.faults.malformed_member_rate = 0.5
    blocked = importer.materialize(f"acme.{ACME_LIST}|{last_closed_window()}", raise_on_error=False)
    assert not blocked.success

    evaluated = dg.build_sensor_context(instance=importer.instance, cursor=context.cursor)
    alert_sensor(evaluated)

    [message] = webhook.messages
    text = message["text"]
    assert "4 failure(s)" in text, "three failed runs and one failed check"
    lines = text.splitlines()
    assert len([line for line in lines if line.startswith("• run ")]) == 3
    assert len([line for line in lines if line.startswith("• check ")]) == 1
    for run in [*runs, blocked]:
        assert f"http://127.0.0.1:3000/runs/{run.run_id}" in text
    for m in missing:
        assert f"acme.{m}|{last_closed_window()}" in text and "404" in text
    assert "invalid_share_below_threshold" in text and f"acme.{ACME_LIST}|{last_closed_window()}" in text
    alert_sensor(dg.build_sensor_context(instance=importer.instance, cursor=evaluated.cursor))
    assert len(webhook.messages) == 1, "an incident is reported once"


@pytest.mark.parametrize(
    ("accounts_file", "problem"),
    [
        (None, "IMPORTER_ACCOUNTS_FILE is not set"),
        ("missing.yaml", "does not exist"),
        ("", "is empty"),
        ("accounts: []\n", "lists no accounts"),
        ("accounts: [\n", "is not valid YAML"),
    ],
)
def test_discovery_never_retires_a_list_because_the_accounts_file_is_unusable(
    importer: Importer, monkeypatch, tmp_path, accounts_file, problem
):
    if accounts_file is None:
        monkeypatch.delenv("IMPORTER_ACCOUNTS_FILE")
    elif accounts_file.endswith(".yaml"):
        monkeypatch.setenv("IMPORTER_ACCOUNTS_FILE", str(tmp_path / accounts_file))
    else:
        (tmp_path / "broken.yaml").write_text(accounts_file)
        monkeypatch.setenv("IMPORTER_ACCOUNTS_FILE", str(tmp_path / "broken.yaml"))

    with pytest.raises(ConfigError, match=problem) as refused:
        discover(importer)

    assert "\n" not in str(refused.value)
    assert importer.storage.retired_lists().keys() == {}


def test_discovery_never_retires_an_accounts_lists_because_its_key_is_unset(importer: Importer, monkeypatch):
    monkeypatch.delenv("TEST_MAILCHIMP_KEY_ACME")

    discover(importer)

    assert importer.storage.retired_lists().keys() == {}


def test_a_window_failed_only_in_its_source_is_retried_like_any_failed_window(importer: Importer, monkeypatch):
    monkeypatch.setenv("IMPORTER_RETRY_COOLDOWN_S", "0")
    key = f"acme.{ACME_LIST}|{last_closed_window()}"
    importer.materialize(key)
    monkeypatch.delenv("TEST_MAILCHIMP_KEY_ACME")

    refetch = importer.materialize(key, selection=["mailchimp_contacts"], raise_on_error=False)

    assert not refetch.success
    [request] = retry_sensor(importer).run_requests
    assert request.partition_key == key


def test_an_alert_names_the_root_cause_not_the_retry_wrapper(importer: Importer, mailchimp_sim, contacts_sim, webhook):
    """The real thing, a minute long: the step's three retries run out and Dagster says "Exceeded max_retries"."""
    context = dg.build_sensor_context(instance=importer.instance)
    alert_sensor(context)
    mailchimp_sim.faults.error_rate = 1.0
    resources = {**importer.resources, "mailchimp": MailchimpResource(retry_attempts=0, state_dir=importer.storage.state_dir)}
    key = f"acme.{ACME_LIST}|{last_closed_window()}"

    failed = dg.materialize(IMPORT_ASSETS, partition_key=key, instance=importer.instance, resources=resources,
                            raise_on_error=False)
    assert [e.event_type_value for e in failed.all_events].count("STEP_UP_FOR_RETRY") == 3
    alert_sensor(dg.build_sensor_context(instance=importer.instance, cursor=context.cursor))

    [message] = webhook.messages
    [line] = [line for line in message["text"].splitlines() if line.startswith("• run ")]
    assert line.startswith(f"• run {failed.run_id[:8]} failed: 1 of 1 windows failed: {key}: Mailchimp (account 'acme')")
    assert "answered 503" in line and line.endswith(f"(http://127.0.0.1:3000/runs/{failed.run_id})")
    assert "max_retries" not in line


def rewrite_accounts(importer_env, text: str) -> None:
    path = Path(importer_env["IMPORTER_ACCOUNTS_FILE"])
    path.write_text(text)
    os.utime(path, (time.time() + 5, time.time() + 5))


def test_a_new_account_is_discovered_without_reloading_the_code(importer: Importer, importer_env):
    rewrite_accounts(importer_env, ACCOUNTS_YAML + """  - id: globex-eu
    mailchimp_api_key_env: TEST_MAILCHIMP_KEY_GLOBEX
    contacts_account: globex-eu-contacts
    lists: [bbbbbbbbb2]
""")

    result = discover(importer)

    [add] = result.dynamic_partitions_requests
    assert add.partitions_def_name == LISTS_PARTITIONS_NAME and list(add.partition_keys) == ["globex-eu.bbbbbbbbb2"]
    [history] = result.run_requests
    assert history.job_name == GROUP.job_name and history.tags[ACCOUNT_TAG] == "globex-eu"
    assert history.tags["dagster/asset_partition_range_start"].startswith("globex-eu.bbbbbbbbb2|")


def test_a_list_moving_between_accounts_is_retired_under_one_and_imported_under_the_other(importer: Importer, importer_env):
    rewrite_accounts(importer_env, f"""
accounts:
  - id: acme
    mailchimp_api_key_env: TEST_MAILCHIMP_KEY_ACME
    contacts_account: acme-contacts
    lists: [{ACME_LIST}]
  - id: acme-vip
    mailchimp_api_key_env: TEST_MAILCHIMP_KEY_ACME
    contacts_account: acme-vip-contacts
    lists: [{ACME_SMALL_LIST}]
  - id: globex
    mailchimp_api_key_env: TEST_MAILCHIMP_KEY_GLOBEX
    contacts_account: globex-contacts
    lists: [{GLOBEX_LIST}]
""")

    result = discover(importer)

    assert importer.storage.retired_lists().keys() == {
        f"acme.{ACME_SMALL_LIST}": "Mailchimp no longer returns it (deleted, archived, or left the allow-list)"
    }
    [add] = result.dynamic_partitions_requests
    assert list(add.partition_keys) == [f"acme-vip.{ACME_SMALL_LIST}"]
    [history] = result.run_requests
    assert history.tags[ACCOUNT_TAG] == "acme-vip"


def test_failed_windows_that_left_the_horizon_are_no_longer_retried(importer: Importer, monkeypatch):
    monkeypatch.setenv("IMPORTER_RETRY_COOLDOWN_S", "0")
    horizon = horizon_start(datetime.now(timezone.utc))
    inside, outside = window_key_at(horizon + timedelta(hours=3)), window_key_at(horizon - timedelta(hours=1))
    importer.storage.history().restore([
        WindowRecord(f"acme.{ACME_LIST}", window, FAILED, "a-run", 1, None, None, None, None, None, "503", horizon)
        for window in (inside, outside)
    ])

    [request] = retry_sensor(importer).run_requests

    assert request.partition_key == f"acme.{ACME_LIST}|{inside}"
