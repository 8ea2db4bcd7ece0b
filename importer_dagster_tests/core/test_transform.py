"""The mapping and validation are pure: tested here without Dagster or HTTP."""

import json

from pydantic import TypeAdapter

from importer_dagster.core.files import WindowFiles
from importer_dagster.core.stages import Stage
from importer_dagster.core.transform import (
    RECORD_SCHEMA,
    ContactRecord,
    member_id_of,
    member_to_record,
    transform_members,
)


def member(**overrides):
    base = {
        "id": "b1946ac92492d2347c6235b4d2611184",
        "email_address": "Jane.Doe@Example.COM",
        "status": "subscribed",
        "merge_fields": {"FNAME": "Jane", "LNAME": ""},
        "tags": [{"id": 1, "name": "vip-2026"}, {"id": 2, "name": "newsletter"}],
        "language": "",
        "vip": True,
        "last_changed": "2026-11-20T03:00:00+00:00",
        "list_id": "1a2d7ebf82",
    }
    base.update(overrides)
    return base


def test_member_maps_to_the_contacts_api_record():
    record = member_to_record(member())
    assert record == {
        "external_id": "1a2d7ebf82:b1946ac92492d2347c6235b4d2611184",
        "email": "jane.doe@example.com",
        "first_name": "Jane",
        "last_name": None,
        "status": "subscribed",
        "list_id": "1a2d7ebf82",
        "changed_at": "2026-11-20T03:00:00Z",
        "tags": ["vip-2026", "newsletter"],
        "language": None,
        "vip": True,
    }
    TypeAdapter(ContactRecord).validate_python(record)


def test_a_records_member_id_is_read_back_from_its_external_id():
    record = member_to_record(member(id="a:b"))
    assert record["external_id"] == "1a2d7ebf82:a:b"
    assert member_id_of(record) == "a:b"


def test_changed_at_is_normalised_to_utc():
    record = member_to_record(member(last_changed="2026-11-20T05:30:00+02:30"))
    assert record["changed_at"] == "2026-11-20T03:00:00Z"


def test_odd_unicode_names_are_kept_valid():
    name = "Zoë \u200b\U0001f600 Ñandú"
    result = transform_members([member(merge_fields={"FNAME": name, "LNAME": "Ørsted"})])
    assert result.dead_letters == []
    assert result.records[0]["first_name"] == name.strip()
    assert result.records[0]["last_name"] == "Ørsted"


def test_invalid_members_become_dead_letters_with_reasons_and_the_rest_pass():
    members = [
        member(id="ok1"),
        member(id="bad-email", email_address="not-an-email"),
        member(id="bad-status", status="zombie"),
        member(id="no-email", email_address=None),
        member(id="no-date", last_changed=None),
        member(id="ok2"),
    ]
    result = transform_members(members)
    assert [record["external_id"] for record in result.records] == ["1a2d7ebf82:ok1", "1a2d7ebf82:ok2"]
    reasons = {letter.member_id: letter.reason for letter in result.dead_letters}
    assert set(reasons) == {"bad-email", "bad-status", "no-email", "no-date"}
    assert reasons["bad-email"].startswith("email:") and "not-an-email" in reasons["bad-email"]
    assert reasons["bad-status"].startswith("status:") and "zombie" in reasons["bad-status"]
    assert reasons["no-email"].startswith("email:")
    assert reasons["no-date"].startswith("changed_at:")
    payload = json.loads(next(letter.payload for letter in result.dead_letters if letter.member_id == "bad-status"))
    assert payload["status"] == "zombie"


def test_records_survive_the_round_trip_through_parquet(tmp_path):
    result = transform_members([member(), member(id="x", tags=[], vip=False, language="fr")])
    writer = WindowFiles(tmp_path).writer(Stage.RECORDS, "acme.1a2d7ebf82", "w", RECORD_SCHEMA)
    writer.write(result.table())
    writer.commit({})
    records = [row for rows in WindowFiles(tmp_path).rows(Stage.RECORDS, "acme.1a2d7ebf82", "w") for row in rows]
    assert records == result.records
    assert records[0]["tags"] == ["vip-2026", "newsletter"]
    assert records[1] == {**member_to_record(member(id="x", tags=[], vip=False, language="fr"))}
    for record in records:
        TypeAdapter(ContactRecord).validate_python(record)
