"""The sent-records store and change detection, on both state databases a deployment can have."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from importer_dagster.core.changes import REMEMBER_EVERY, ChangeDetection, SentRecords, record_hash
from importer_dagster.core.contacts import encoded_record
from importer_dagster.core.state import state_engine
from importer_dagster.throwaway_instance import throwaway_dagster_home

LIST_KEY = "acme.1a2d7ebf82"
REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 6, 12, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> SentRecords:
    if request.param == "sqlite":
        yield SentRecords(state_engine(f"sqlite:///{tmp_path / 'state.sqlite3'}"))
        return
    with throwaway_dagster_home(tmp_path, REPO / "deploy" / "dagster.yaml") as (_, environment):
        engine = state_engine(f"postgresql://postgres@127.0.0.1:5432/{environment['DAGSTER_PG_DB']}")
        yield SentRecords(engine)
        engine.dispose()


def record(member: str, email: str = "a@example.com", changed_at: str = "2026-12-06T10:00:00Z") -> dict:
    return {
        "external_id": f"1a2d7ebf82:{member}", "email": email, "first_name": "Ada", "last_name": None,
        "status": "subscribed", "list_id": "1a2d7ebf82", "changed_at": changed_at, "tags": ["x"],
        "language": "en", "vip": False,
    }


def test_a_hash_is_the_one_earlier_versions_stored():
    """Stores written before the hash was sped up must keep matching, or every contact is re-sent."""
    content = {name: value for name, value in record("m1").items() if name != "changed_at"}
    earlier = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    assert record_hash(encoded_record(record("m1"))) == earlier
    assert record_hash(encoded_record(record("m1", changed_at="2026-12-06T11:00:00Z"))) == earlier
    assert record_hash(encoded_record(record("m1", email="b@example.com"))) != earlier


def test_a_record_whose_time_was_not_validated_is_refused_rather_than_hashed_wrongly():
    with pytest.raises(ValueError, match="validated record"):
        record_hash(encoded_record(record("m1", changed_at="2026-12-06T10:00:00+00:00")))


def test_a_first_sync_of_many_records_is_written_in_bulk_and_read_back(store: SentRecords):
    entries = [(f"m{i:06d}", f"{i:032x}", "2026-12-06T10:00:00Z") for i in range(50_000)]
    assert not store.known(LIST_KEY)

    store.remember(LIST_KEY, entries, NOW)

    assert store.known(LIST_KEY) and not store.known("acme.other")
    found = store.lookup(LIST_KEY, [member for member, _, _ in entries])
    assert len(found) == 50_000
    assert found["m049999"].record_hash == f"{49_999:032x}" and found["m049999"].sent_at == NOW


def test_an_older_change_never_overwrites_a_newer_one_and_the_last_entry_of_a_member_wins(store: SentRecords):
    store.remember(LIST_KEY, [("m1", "new", "2026-12-06T11:00:00Z")], NOW)
    store.remember(LIST_KEY, [("m1", "old", "2026-12-06T10:00:00Z"), ("m2", "first", "2026-12-06T10:00:00Z"),
                              ("m2", "second", "2026-12-06T10:00:01Z")], NOW)

    found = store.lookup(LIST_KEY, ["m1", "m2"])
    assert found["m1"].record_hash == "new"
    assert found["m2"].record_hash == "second"


def test_accepted_records_reach_the_store_in_bulk_and_only_those_accepted(store: SentRecords):
    changes = ChangeDetection(store, timedelta(days=7), NOW)
    batch = [record(f"m{i}") for i in range(10)]
    outgoing = changes.changed(LIST_KEY, batch)
    assert [sent for sent, _ in outgoing] == batch

    changes.accepted(LIST_KEY, [remembered for _, remembered in outgoing], rejected_member_ids={"m3"})
    assert not store.known(LIST_KEY), f"held until {REMEMBER_EVERY} records or the end of the export"
    changes.flush(LIST_KEY)

    assert set(store.lookup(LIST_KEY, [f"m{i}" for i in range(10)])) == {f"m{i}" for i in range(10)} - {"m3"}
    again = ChangeDetection(store, timedelta(days=7), NOW)
    edited = record("m5", email="new@example.com")
    assert [sent for sent, _ in again.changed(LIST_KEY, [*batch, edited])] == [batch[3], edited]
