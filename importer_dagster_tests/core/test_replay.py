"""Replaying dead letters over real HTTP, without Dagster: a replay after the fix really sends."""

import orjson
import pytest

from importer_dagster.core.contacts import contacts_client
from importer_dagster.core.dead_letters import DeadLetter, DeadLetters
from importer_dagster.core.http import RetrySettings
from importer_dagster.core.replay import replay_dead_letters
from importer_dagster.core.state import state_engine
from importer_dagster.core.transform import member_to_record
from importer_dagster_tests.fixtures import CONTACTS_KEY

LIST, WINDOW = "acme.1a2d7ebf82", "2026-11-28-09:00"


def record(index: int) -> dict:
    return member_to_record({
        "id": f"{index:032x}", "email_address": f"p{index}@example.com", "status": "subscribed",
        "merge_fields": {"FNAME": "P", "LNAME": str(index)}, "tags": [], "language": "en", "vip": False,
        "last_changed": "2026-11-28T09:10:00+00:00", "list_id": "1a2d7ebf82",
    })


@pytest.fixture
def letters(tmp_path) -> DeadLetters:
    dead_letters = DeadLetters(state_engine(f"sqlite:///{tmp_path / 'state.sqlite3'}"))
    dead_letters.record(
        account="acme", list_key=LIST, window=WINDOW, stage="export", run_id="import-run",
        letters=[DeadLetter(r["external_id"].split(":")[1], "rejected by the Contacts API: down", orjson.dumps(r).decode(),
                            r["external_id"]) for r in map(record, range(3))],
    )
    return dead_letters


def replay(contacts_sim, letters: DeadLetters, run_id: str):
    with contacts_client(contacts_sim.base_url, CONTACTS_KEY, run_id, parallelism=1, retry=RetrySettings()) as client:
        return replay_dead_letters(client, "acme-contacts", letters, LIST, WINDOW, run_id=run_id, batch_size=1000)


def test_a_replay_after_the_fix_sends_even_though_an_earlier_replay_sent_the_same_body(contacts_sim, letters):
    contacts_sim.faults.reject_external_ids = [record(i)["external_id"] for i in range(3)]
    failed = replay(contacts_sim, letters, "replay-1")
    contacts_sim.faults.reject_external_ids = []

    fixed = replay(contacts_sim, letters, "replay-2")

    assert (failed.exported, failed.still_dead) == (0, 3)
    assert (fixed.exported, fixed.still_dead) == (3, 0)
    assert {row["external_id"] for row in contacts_sim.imports("acme-contacts")} == {record(i)["external_id"] for i in range(3)}
    history = letters.rows(list_key=LIST, include_resolved=True)
    assert {(row.run_id, row.replay_run_id, row.resolved_run_id) for row in history} == {("import-run", "replay-1", "replay-2")}


def test_a_replay_that_fails_again_keeps_the_run_that_first_failed_the_contact(contacts_sim, letters):
    contacts_sim.faults.reject_external_ids = [record(0)["external_id"]]

    stats = replay(contacts_sim, letters, "replay-1")

    assert (stats.exported, stats.still_dead) == (2, 1)
    [still_open] = letters.rows(list_key=LIST)
    assert (still_open.run_id, still_open.replay_run_id, still_open.resolved_run_id) == ("import-run", "replay-1", None)
    assert still_open.reason == "rejected by the Contacts API: rejected by rule"


def test_a_member_getting_through_resolves_its_letters_of_that_window_and_before_only(letters):
    later = record(0)
    letters.record(account="acme", list_key=LIST, window="2026-11-28-11:00", stage="transform", run_id="later-run",
                   letters=[DeadLetter(later["external_id"].split(":")[1], "email: bad", "{}")])
    member = later["external_id"].split(":")[1]

    letters.resolve(LIST, [member], "fixing-run", up_to_window="2026-11-28-10:00")

    resolved = {(row.window, row.resolved_run_id) for row in letters.rows(list_key=LIST, include_resolved=True)
                if row.member_id == member}
    assert resolved == {(WINDOW, "fixing-run"), ("2026-11-28-11:00", None)}
    assert letters.open_members(LIST)[member] == "2026-11-28-11:00"
