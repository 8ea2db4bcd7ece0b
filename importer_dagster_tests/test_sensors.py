from datetime import datetime, timezone

import dagster as dg

from importer_dagster.partitions import FIRST_WINDOW_KEY, LISTS_PARTITIONS_NAME, latest_closed_window
from importer_dagster.resources import MailchimpResource
from importer_dagster.schedules import ACCOUNT_TAG
from importer_dagster.sensors import AUTO_RETRY_TAG, alert_sensor, failed_partitions_sensor, list_discovery_sensor

from .conftest import ACME_LIST, ACME_SMALL_LIST, GLOBEX_LIST, Importer, last_closed_window


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
    return failed_partitions_sensor(dg.build_sensor_context(instance=importer.instance, cursor=cursor))


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
    assert "3 failure(s)" in text or "4 failure(s)" in text
    for run in [*runs, blocked]:
        assert f"http://127.0.0.1:3000/runs/{run.run_id}" in text
    for m in missing:
        assert f"acme.{m}|{last_closed_window()}" in text and "404" in text
    assert "invalid_share_below_threshold" in text and f"acme.{ACME_LIST}|{last_closed_window()}" in text
    alert_sensor(dg.build_sensor_context(instance=importer.instance, cursor=evaluated.cursor))
    assert len(webhook.messages) == 1, "an incident is reported once"
