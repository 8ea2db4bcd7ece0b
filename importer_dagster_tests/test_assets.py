"""The three assets end to end, over real HTTP against both simulators."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from importer_dagster.assets import FORCE_EXPORT_TAG
from importer_dagster.core.windows import FIRST_WINDOW_START, decode_partition_key
from importer_dagster.simulators.mailchimp import MailchimpSimulator

from .conftest import (
    ACME_KEY,
    ACME_LIST,
    CONTACTS_KEY,
    GLOBEX_KEY,
    GROUP,
    IMPORT_ASSETS,
    LISTS_PARTITIONS_NAME,
    NOW,
    PARTITIONS,
    Importer,
    asset_key,
    build_world,
    fast_resources,
    last_closed_window,
    window_key,
)


def expected_ids(simulator: MailchimpSimulator, list_id: str, key: str) -> set[str]:
    window = decode_partition_key(f"acme.{list_id}|{key}")
    return {member_id for member_id, changed in simulator.members_truth(list_id).items() if window.contains(changed)}


def imported_ids(contacts_sim, list_id: str, account: str = "acme-contacts") -> Counter:
    return Counter(
        row["external_id"].split(":", 1)[1]
        for row in contacts_sim.imports(account)
        if row["external_id"].startswith(f"{list_id}:")
    )


def materialization_metadata(result: dg.ExecuteInMemoryResult, asset: str) -> dict:
    [event] = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == asset_key(asset)
    ]
    return {key: value.value for key, value in event.metadata.items()}


def test_a_window_imports_exactly_its_contacts_once(importer: Importer, mailchimp_sim, contacts_sim):
    key = last_closed_window()
    expected = expected_ids(mailchimp_sim, ACME_LIST, key)
    assert len(expected) > 50

    result = importer.materialize(f"acme.{ACME_LIST}|{key}")

    imported = imported_ids(contacts_sim, ACME_LIST)
    assert set(imported) == expected
    assert max(imported.values()) == 1
    metadata = materialization_metadata(result, "exported_batches")
    assert metadata["fetched"] == metadata["transformed"] == metadata["exported"] == len(expected)
    assert metadata["rejected"] == metadata["dead_lettered"] == 0
    assert metadata["pages_fetched"] >= 1
    assert isinstance(metadata["fetch_duration_s"], float)
    assert metadata["window_start"].startswith(key[:10])
    stored = contacts_sim.contacts("acme-contacts")
    some = next(iter(expected))
    assert stored[f"{ACME_LIST}:{some}"]["email"] == stored[f"{ACME_LIST}:{some}"]["email"].lower()


def test_rematerializing_an_unchanged_partition_sends_nothing(importer: Importer, contacts_sim):
    partition = f"acme.{ACME_LIST}|{last_closed_window()}"
    importer.materialize(partition)
    first_audit = contacts_sim.imports("acme-contacts")
    first_requests = contacts_sim.requests()

    result = importer.materialize(partition)

    assert contacts_sim.imports("acme-contacts") == first_audit
    assert contacts_sim.requests() == first_requests
    metadata = materialization_metadata(result, "exported_batches")
    assert metadata["skipped"] == metadata["fetched"] == len(first_audit) and metadata["exported"] == 0


@pytest.mark.parametrize("bounds", ["exclusive-inclusive", "inclusive-exclusive"])
def test_ties_on_a_window_bound_belong_to_exactly_one_window(importer: Importer, contacts_sim, bounds):
    with MailchimpSimulator(build_world(bounds=bounds)) as simulator:
        importer.resources["mailchimp"] = fast_resources(
            importer.storage.state_dir, contacts_sim.base_url, base_url=simulator.base_url
        )["mailchimp"]
        key = window_key(NOW - timedelta(hours=2))
        start = decode_partition_key(f"acme.{ACME_LIST}|{key}").start
        ids = list(simulator.members_truth(ACME_LIST))
        on_start, on_end, just_before_end = ids[:5], ids[5:10], ids[10:15]
        for member_id in on_start:
            simulator.set_last_changed(ACME_LIST, member_id, start)
        for member_id in on_end:
            simulator.set_last_changed(ACME_LIST, member_id, start + timedelta(hours=1))
        for member_id in just_before_end:
            simulator.set_last_changed(ACME_LIST, member_id, start + timedelta(hours=1) - timedelta(seconds=1))
        expected_here = expected_ids(simulator, ACME_LIST, key)
        next_key = window_key(start + timedelta(hours=1))
        expected_next = expected_ids(simulator, ACME_LIST, next_key)

        importer.materialize(f"acme.{ACME_LIST}|{key}")
        here = set(imported_ids(contacts_sim, ACME_LIST))
        importer.materialize(f"acme.{ACME_LIST}|{next_key}")
        both = imported_ids(contacts_sim, ACME_LIST)

    assert here == expected_here
    assert set(on_start) | set(just_before_end) <= here
    assert not set(on_end) & here
    assert set(both) == expected_here | expected_next
    assert max(both.values()) == 1


def test_the_first_window_is_the_full_sync(importer: Importer, contacts_sim):
    world = build_world(now=FIRST_WINDOW_START + timedelta(hours=2, minutes=30), history_hours=30, acme_members=1500)
    with MailchimpSimulator(world) as simulator:
        importer.resources["mailchimp"] = fast_resources(
            importer.storage.state_dir, contacts_sim.base_url, base_url=simulator.base_url
        )["mailchimp"]
        truth = simulator.members_truth(ACME_LIST)
        first_key = FIRST_WINDOW_START.strftime("%Y-%m-%d-%H:%M")
        importer.materialize(f"acme.{ACME_LIST}|{first_key}")
        first = set(imported_ids(contacts_sim, ACME_LIST))
        for hour in (1, 2):
            importer.materialize(f"acme.{ACME_LIST}|{window_key(FIRST_WINDOW_START + timedelta(hours=hour))}")
        everything = imported_ids(contacts_sim, ACME_LIST)

    before_first_end = {m for m, changed in truth.items() if changed < FIRST_WINDOW_START + timedelta(hours=1)}
    assert len(before_first_end) > 1000
    assert first == before_first_end
    assert set(everything) == set(truth)
    assert max(everything.values()) == 1


def test_contacts_changing_mid_scan_never_make_others_skipped(importer: Importer, mailchimp_sim, contacts_sim):
    key = window_key(NOW - timedelta(hours=3))
    before_scan = expected_ids(mailchimp_sim, ACME_LIST, key)
    importer.resources["mailchimp"] = fast_resources(
        importer.storage.state_dir, contacts_sim.base_url, page_size=25
    )["mailchimp"]
    mailchimp_sim.faults.touch_after_page = 3

    result = importer.materialize(f"acme.{ACME_LIST}|{key}")

    mailchimp_sim.faults.touch_after_page = 0
    after_scan = expected_ids(mailchimp_sim, ACME_LIST, key)
    moved_away = before_scan - after_scan
    imported = imported_ids(contacts_sim, ACME_LIST)
    assert len(moved_away) > 10, "the fault must really have moved contacts during the scan"
    assert after_scan <= set(imported), "a contact that stayed in the window was skipped"
    assert set(imported) <= before_scan
    assert max(imported.values()) == 1
    assert materialization_metadata(result, "mailchimp_contacts")["pages_fetched"] > len(before_scan) // 25


def test_a_503_then_success_is_retried_within_the_step(importer: Importer, mailchimp_sim, contacts_sim):
    key = last_closed_window()
    contacts_sim.faults.burst_503 = 1
    mailchimp_sim.faults.burst_429 = 2
    mailchimp_sim.faults.bodyless_403 = 1

    result = importer.materialize(f"acme.{ACME_LIST}|{key}")

    assert set(imported_ids(contacts_sim, ACME_LIST)) == expected_ids(mailchimp_sim, ACME_LIST, key)
    statuses = [request["status"] for request in contacts_sim.requests()]
    assert statuses[0] == 503 and 200 in statuses
    assert not [event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"]


def test_a_request_still_failing_after_its_retries_fails_the_step_and_dagster_retries_it(
    importer: Importer, mailchimp_sim, contacts_sim
):
    key = last_closed_window()
    importer.resources["mailchimp"] = fast_resources(
        importer.storage.state_dir, contacts_sim.base_url, retry_attempts=1
    )["mailchimp"]
    mailchimp_sim.faults.burst_429 = 2

    result = importer.materialize(f"acme.{ACME_LIST}|{key}")

    types = [event.event_type_value for event in result.all_events]
    assert types.count("STEP_UP_FOR_RETRY") == 1 and "STEP_RESTARTED" in types
    imported = imported_ids(contacts_sim, ACME_LIST)
    assert set(imported) == expected_ids(mailchimp_sim, ACME_LIST, key)
    assert max(imported.values()) == 1


def test_a_404_fails_the_partition_at_once_without_retry(importer: Importer, mailchimp_sim):
    missing = "ccccccccc9"
    importer.instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, [f"acme.{missing}"])

    result = importer.materialize(f"acme.{missing}|{last_closed_window()}", raise_on_error=False)

    assert not result.success
    calls = [request for request in mailchimp_sim.requests if missing in request["path"]]
    assert len(calls) == 1
    events = result.all_events
    assert not [event for event in events if event.event_type_value == "STEP_UP_FOR_RETRY"]
    [failure] = [event for event in events if event.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "account 'acme'" in message and missing in message and "404" in message
    assert ACME_KEY not in message


def large_first_window(importer: Importer, contacts_sim, members: int = 25_000) -> MailchimpSimulator:
    """A full sync big enough to stream in several chunks of ten thousand members."""
    world = build_world(now=FIRST_WINDOW_START + timedelta(hours=1, minutes=30), history_hours=24, acme_members=members)
    simulator = MailchimpSimulator(world)
    importer.resources["mailchimp"] = fast_resources(
        importer.storage.state_dir, contacts_sim.base_url, base_url=simulator.base_url
    )["mailchimp"]
    return simulator


def test_a_streamed_window_sends_the_same_batches_as_an_export_from_its_files(importer: Importer, contacts_sim):
    with large_first_window(importer, contacts_sim) as simulator:
        partition = f"acme.{ACME_LIST}|{FIRST_WINDOW_START.strftime('%Y-%m-%d-%H:%M')}"
        truth = simulator.members_truth(ACME_LIST)
        expected = {m for m, changed in truth.items() if changed < FIRST_WINDOW_START + timedelta(hours=1)}

        importer.materialize(partition)
        streamed_requests = contacts_sim.requests()
        streamed_audit = contacts_sim.imports("acme-contacts")
        importer.materialize(partition, selection=["exported_batches"], tags={FORCE_EXPORT_TAG: "true"})

    assert len(expected) > 20_000
    streamed = Counter(row["external_id"].split(":", 1)[1] for row in streamed_audit)
    assert set(streamed) == expected and max(streamed.values()) == 1
    assert len(streamed_requests) == -(-len(expected) // 1000)
    resent_audit = contacts_sim.imports("acme-contacts")[len(streamed_audit):]

    def batches(audit: list[dict]) -> set[frozenset]:
        grouped: dict[str, set] = {}
        for row in audit:
            grouped.setdefault(row["idempotency_key"], set()).add(row["external_id"])
        return {frozenset(ids) for ids in grouped.values()}

    assert batches(resent_audit) == batches(streamed_audit), "the same records in the same batches"


def test_a_large_window_invalid_from_its_first_chunk_sends_nothing(importer: Importer, contacts_sim):
    with large_first_window(importer, contacts_sim) as simulator:
        simulator.faults.malformed_member_rate = 0.5
        partition = f"acme.{ACME_LIST}|{FIRST_WINDOW_START.strftime('%Y-%m-%d-%H:%M')}"

        result = importer.materialize(partition, raise_on_error=False)

    assert not result.success
    assert contacts_sim.requests() == []
    failure = next(event for event in result.all_events if event.event_type_value == "STEP_FAILURE")
    assert "are invalid (threshold 20%); not exported." in failure.step_failure_data.error.message
    letters = importer.storage.dead_letters().rows(list_key=f"acme.{ACME_LIST}")
    assert len(letters) > 5_000


def test_invalid_contacts_become_dead_letters_with_reasons(importer: Importer, mailchimp_sim, contacts_sim):
    key = last_closed_window()
    mailchimp_sim.faults.malformed_member_rate = 0.1

    result = importer.materialize(f"acme.{ACME_LIST}|{key}")

    letters = importer.storage.dead_letters().rows(list_key=f"acme.{ACME_LIST}", window=key)
    assert letters, "malformed members must be dead-lettered"
    assert all(letter.reason and letter.stage == "transform" and letter.run_id == result.run_id for letter in letters)
    assert any("email" in letter.reason for letter in letters)
    dead = {letter.member_id for letter in letters}
    imported = set(imported_ids(contacts_sim, ACME_LIST))
    assert not dead & imported
    expected = expected_ids(mailchimp_sim, ACME_LIST, key)
    assert {m for m in imported | dead if m in expected} == expected
    metadata = materialization_metadata(result, "exported_batches")
    assert metadata["fetched"] == metadata["exported"] + metadata["rejected"] + metadata["dead_lettered"]


def test_the_contacts_api_rejections_become_dead_letters(importer: Importer, mailchimp_sim, contacts_sim):
    key = last_closed_window()
    expected = expected_ids(mailchimp_sim, ACME_LIST, key)
    rejected = sorted(expected)[:3]
    contacts_sim.faults.reject_external_ids = [f"{ACME_LIST}:{member_id}" for member_id in rejected]

    result = importer.materialize(f"acme.{ACME_LIST}|{key}")

    letters = importer.storage.dead_letters().rows(list_key=f"acme.{ACME_LIST}", window=key)
    assert {letter.member_id for letter in letters} == set(rejected)
    assert all(letter.stage == "export" and "rejected by rule" in letter.reason for letter in letters)
    metadata = materialization_metadata(result, "exported_batches")
    assert metadata["rejected"] == 3
    assert metadata["exported"] == len(expected) - 3


def test_a_run_uses_its_full_connection_budget_and_no_more(importer: Importer, mailchimp_sim, contacts_sim):
    importer.resources["mailchimp"] = fast_resources(
        importer.storage.state_dir, contacts_sim.base_url, page_size=20
    )["mailchimp"]
    mailchimp_sim.faults.page_delay_s = 0.05

    importer.materialize(f"acme.{ACME_LIST}|{last_closed_window()}")

    assert mailchimp_sim.max_in_flight[ACME_KEY] == 10
    assert mailchimp_sim.rejected_over_limit[ACME_KEY] == 0


def test_every_request_carries_the_run_id_as_correlation_id(importer: Importer, mailchimp_sim, contacts_sim):
    result = importer.materialize(f"acme.{ACME_LIST}|{last_closed_window()}")
    assert {request["correlation_id"] for request in mailchimp_sim.requests} == {result.run_id}
    assert {request["correlation_id"] for request in contacts_sim.requests()} == {result.run_id}


def test_no_key_appears_in_logs_or_event_storage(importer: Importer, mailchimp_sim, capfd, caplog, monkeypatch):
    ok = importer.materialize(f"globex.bbbbbbbbb1|{last_closed_window()}")
    monkeypatch.setenv("TEST_MAILCHIMP_KEY_ACME", "ffffffffffffffffffffffffffffffff-us6")
    refused = importer.materialize(f"acme.{ACME_LIST}|{last_closed_window()}", raise_on_error=False)
    assert ok.success and not refused.success

    secrets = [ACME_KEY, GLOBEX_KEY, CONTACTS_KEY, "ffffffffffffffffffffffffffffffff"]
    stored = "".join(
        dg.serialize_value(record) for run in (ok, refused) for record in importer.instance.all_logs(run.run_id)
    )
    assert "401" in stored
    captured = capfd.readouterr()
    for text in (stored, captured.out, captured.err, caplog.text):
        for secret in secrets:
            assert secret not in text


def test_one_run_over_many_lists_keeps_each_windows_outcome_apart(importer: Importer, mailchimp_sim, contacts_sim):
    missing = "ccccccccc9"
    instance = importer.instance
    instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, [f"acme.{missing}"])
    key = last_closed_window()
    lists = [f"acme.{ACME_LIST}", "acme.aaaaaaaaa2", "globex.bbbbbbbbb1", f"acme.{missing}"]

    result = dg.materialize(
        IMPORT_ASSETS,
        instance=instance,
        resources=importer.resources,
        tags={
            "dagster/asset_partition_range_start": f"{lists[0]}|{key}",
            "dagster/asset_partition_range_end": f"{lists[-1]}|{key}",
        },
        raise_on_error=False,
    )

    assert not result.success
    statuses = instance.get_status_by_partition(
        asset_key("exported_batches"), [f"{name}|{key}" for name in lists], PARTITIONS
    )
    assert statuses == {
        f"acme.{ACME_LIST}|{key}": dg.AssetPartitionStatus.MATERIALIZED,
        f"acme.aaaaaaaaa2|{key}": dg.AssetPartitionStatus.MATERIALIZED,
        f"globex.bbbbbbbbb1|{key}": dg.AssetPartitionStatus.MATERIALIZED,
        f"acme.{missing}|{key}": dg.AssetPartitionStatus.FAILED,
    }
    assert set(imported_ids(contacts_sim, ACME_LIST)) == expected_ids(mailchimp_sim, ACME_LIST, key)
    assert imported_ids(contacts_sim, "bbbbbbbbb1", account="globex-contacts")
    assert [run.run_id for run in instance.get_runs()] == [result.run_id]


def test_a_partition_of_an_unknown_account_fails_in_one_line(importer: Importer):
    importer.instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, ["initech.aaaaaaaaa1"])
    result = importer.materialize(f"initech.aaaaaaaaa1|{last_closed_window()}", raise_on_error=False)
    [failure] = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message.strip()
    assert message.endswith("unknown account 'initech' (not in the accounts file)")
    assert "\n" not in message


def _bad_key(key: str):
    return lambda monkeypatch, tmp_path: key


def _window_still_open():
    """The window after the current one, taken when the test runs: the suite outlasts an hour, so the
    current window at collection may have closed by then."""
    return lambda monkeypatch, tmp_path: f"acme.{ACME_LIST}|{window_key(datetime.now(timezone.utc) + timedelta(hours=1))}"


def _good_key_with(name: str, value: str | None):
    def arrange(monkeypatch, tmp_path) -> str:
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value.format(tmp=tmp_path))
        return f"acme.{ACME_LIST}|{last_closed_window()}"
    return arrange


@pytest.mark.parametrize(
    ("arrange", "names"),
    [
        (_bad_key(f"acme.{ACME_LIST}|garbage"), "'garbage' is not an hourly window key"),
        (_bad_key(f"acme.{ACME_LIST}"), f"'acme.{ACME_LIST}' is not a partition key of the form"),
        (_bad_key(f"acme.{ACME_LIST}|2020-01-01-00:00"), "'2020-01-01-00:00' is not an hourly window key"),
        (_bad_key(f"acme.ccccccccc7|{last_closed_window()}"), "list acme.ccccccccc7 is not registered"),
        (_window_still_open(), "window {window} has not closed yet"),
        (_bad_key(f"acme.{ACME_LIST}|{window_key(FIRST_WINDOW_START - timedelta(hours=1))}"),
         "is older than the 7-day horizon: `importer-dagster resync` imports it"),
        (_good_key_with("IMPORTER_ACCOUNTS_FILE", "{tmp}/nope.yaml"), "nope.yaml does not exist"),
        (_good_key_with("IMPORTER_ACCOUNTS_FILE", None), "IMPORTER_ACCOUNTS_FILE is not set"),
        (_good_key_with("CONTACTS_API_KEY", None), "CONTACTS_API_KEY is not set"),
        (_good_key_with("IMPORTER_MAX_INVALID_SHARE", "abc"), "IMPORTER_MAX_INVALID_SHARE='abc' must be a share"),
        (_good_key_with("IMPORTER_RESEND_AFTER_S", "-5"), "IMPORTER_RESEND_AFTER_S='-5' must be a positive number"),
    ],
    ids=["malformed", "list-only", "before-start", "unregistered", "not-closed", "left-the-horizon", "no-accounts-file",
         "accounts-unset", "no-contacts-key", "bad-share", "bad-seconds"],
)
def test_what_can_never_succeed_fails_on_the_first_attempt_in_one_line(
    importer: Importer, contacts_sim, monkeypatch, tmp_path, arrange, names
):
    key = arrange(monkeypatch, tmp_path)

    result = importer.materialize(None, raise_on_error=False, tags={"dagster/partition": key})

    types = [event.event_type_value for event in result.all_events]
    assert not result.success and "STEP_UP_FOR_RETRY" not in types and types.count("STEP_FAILURE") == 1
    [failure] = [event.step_failure_data for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    description = failure.user_failure_data.description
    assert names.format(window=key.rpartition("|")[2]) in description and "\n" not in description
    assert contacts_sim.requests() == []


def test_a_wrong_contacts_key_fails_the_run_even_when_nothing_changed(importer: Importer, contacts_sim, monkeypatch):
    key = f"acme.{ACME_LIST}|{last_closed_window()}"
    importer.materialize(key)
    monkeypatch.setenv("CONTACTS_API_KEY", "not-the-key")

    unchanged = importer.materialize(key, raise_on_error=False)

    types = [event.event_type_value for event in unchanged.all_events]
    assert not unchanged.success and "STEP_UP_FOR_RETRY" not in types
    [failure] = [event.step_failure_data for event in unchanged.all_events if event.event_type_value == "STEP_FAILURE"]
    assert failure.user_failure_data.description == (
        "Contacts API: GET /v1/accounts/acme-contacts answered 401: invalid or missing API key"
    )
    assert contacts_sim.account_reads() == ["acme-contacts"], "the first run checked the key once; the second was refused"


def test_a_contact_imported_later_resolves_its_open_dead_letter(importer: Importer, mailchimp_sim, contacts_sim):
    earlier, later = window_key(NOW - timedelta(hours=2)), window_key(NOW - timedelta(hours=1))
    member = sorted(expected_ids(mailchimp_sim, ACME_LIST, earlier))[0]
    contacts_sim.faults.reject_external_ids = [f"{ACME_LIST}:{member}"]
    importer.materialize(f"acme.{ACME_LIST}|{earlier}")
    [letter] = importer.storage.dead_letters().rows(list_key=f"acme.{ACME_LIST}")
    contacts_sim.faults.reject_external_ids = []
    mailchimp_sim.touch(ACME_LIST, member_ids=[member], at=decode_partition_key(f"a.l|{later}").start + timedelta(minutes=5),
                        merge_fields={"FNAME": "Fixed"})

    fixed = importer.materialize(f"acme.{ACME_LIST}|{later}")

    assert letter.window == earlier and importer.storage.dead_letters().rows(list_key=f"acme.{ACME_LIST}") == []
    [resolved] = importer.storage.dead_letters().rows(list_key=f"acme.{ACME_LIST}", include_resolved=True)
    assert (resolved.run_id, resolved.resolved_run_id) == (letter.run_id, fixed.run_id)


def status_cache_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """Which partitions Dagster's partition-status cache of the asset was built for."""
    [record] = instance.get_asset_records([key])
    return record.asset_entry.cached_status.partitions_def_id if record.asset_entry.cached_status else None


def test_a_run_leaves_the_partition_status_cache_current_after_a_list_is_registered(
    postgres_instance: dg.DagsterInstance, importer_env, contacts_sim
):
    """Registering a list changes the group's partitions, and Dagster then rebuilds each asset's
    cache from all its events: the next run does it, so the UI's partition view does not."""
    resources = fast_resources(importer_env["IMPORTER_STATE_DIR"], contacts_sim.base_url)
    importer = Importer(postgres_instance, resources, resources["storage"])
    keys = list(GROUP.asset_keys.values())
    importer.materialize(f"acme.{ACME_LIST}|{window_key(NOW - timedelta(hours=2))}")
    postgres_instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, ["globex.c3d4e5f6a7"])
    before = [status_cache_id(postgres_instance, key) for key in keys]

    importer.materialize(f"acme.{ACME_LIST}|{last_closed_window()}")

    after = [status_cache_id(postgres_instance, key) for key in keys]
    assert all(before) and all(old != new for old, new in zip(before, after)), "rebuilt for the new list"
    for key in keys:
        postgres_instance.get_status_by_partition(key, [], GROUP.partitions)
    assert [status_cache_id(postgres_instance, key) for key in keys] == after, "a reader finds it current"
