"""The Contacts API simulator, driven over real HTTP as the importer drives it.

The importer's own tests trust this simulator to say what arrived and how often, so these tests
pin down exactly that: what is stored, what is refused, and what each injected fault does.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from importer_dagster.simulators.contacts import ContactsFaults, ContactsSimulator

KEY = "contacts-test-key-31f0c2"
ACCOUNT = "acme-contacts"
LIST = "aaaaaaaaa1"
MISSING = object()
"""In a record override: leave the field out."""


def record(member: str = "m1", **overrides: Any) -> dict[str, Any]:
    base = {
        "external_id": f"{LIST}:{member}",
        "email": f"{member}@example.com",
        "first_name": "Ada",
        "last_name": None,
        "status": "subscribed",
        "list_id": LIST,
        "changed_at": "2024-05-01T10:00:00Z",
        "tags": ["vip"],
        "language": "en",
        "vip": False,
    }
    base.update(overrides)
    return base


def post(
    sim: ContactsSimulator,
    records: list[Any] | None = None,
    *,
    key: str | None = "auto",
    account: str = ACCOUNT,
    api_key: str | None = KEY,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    sent = {"Content-Type": "application/json", "X-Correlation-ID": "run-1"}
    if api_key is not None:
        sent["Authorization"] = f"Bearer {api_key}"
    if key is not None:
        sent["Idempotency-Key"] = uuid.uuid4().hex if key == "auto" else key
    sent.update(headers or {})
    if body is None:
        body = json.dumps({"records": records if records is not None else [record()]}).encode()
    return requests.post(
        f"{sim.base_url}/v1/accounts/{account}/contacts/import", data=body, headers=sent, timeout=10
    )


@pytest.fixture
def sim(tmp_path: Path):
    with ContactsSimulator(KEY, db_path=tmp_path / "contacts.sqlite3") as simulator:
        yield simulator


def test_accepted_import_lands_in_contacts_and_the_audit_log(sim: ContactsSimulator) -> None:
    records = [record("m1"), record("m2", vip=True, tags=[], language=None)]

    answer = post(sim, records, key="batch-1")

    assert answer.status_code == 200
    assert answer.json() == {"accepted": 2, "rejected": []}
    assert sim.contacts(ACCOUNT) == {r["external_id"]: r for r in records}
    assert [(row["external_id"], row["idempotency_key"], row["correlation_id"]) for row in sim.imports(ACCOUNT)] == [
        (f"{LIST}:m1", "batch-1", "run-1"),
        (f"{LIST}:m2", "batch-1", "run-1"),
    ]
    assert sim.import_counts(ACCOUNT) == {f"{LIST}:m1": 1, f"{LIST}:m2": 1}
    assert sim.contacts("other-account") == {}
    [seen] = sim.requests()
    assert seen["account"] == ACCOUNT and seen["status"] == 200 and seen["records"] == 2


def test_optional_fields_may_be_left_out(sim: ContactsSimulator) -> None:
    minimal = {k: v for k, v in record().items() if k not in ("tags", "language", "vip")}

    assert post(sim, [minimal]).json() == {"accepted": 1, "rejected": []}


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", f"Basic {KEY}", f"Bearer {KEY}x"])
def test_missing_or_bad_key_is_401_and_nothing_is_stored(sim: ContactsSimulator, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    answer = post(sim, api_key=None, headers=headers)

    assert answer.status_code == 401
    assert "error" in answer.json()
    assert sim.contacts(ACCOUNT) == {}
    assert sim.requests()[0]["status"] == 401


def test_reading_an_account_proves_the_key_and_no_import_fault_touches_it(sim: ContactsSimulator) -> None:
    post(sim, [record("m1"), record("m2")])
    sim.faults.burst_503 = 1
    sim.faults.error_rate = 1.0

    good = requests.get(f"{sim.base_url}/v1/accounts/{ACCOUNT}", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    wrong = requests.get(f"{sim.base_url}/v1/accounts/{ACCOUNT}", headers={"Authorization": "Bearer nope"}, timeout=10)

    assert good.status_code == 200 and good.json() == {"account": ACCOUNT, "contacts": 2}
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert sim.account_reads() == [ACCOUNT]
    assert len(sim.requests()) == 1, "the import request log holds imports only"
    assert sim.faults.burst_503 == 1, "the burst is still waiting for an import"


def test_an_account_read_counts_distinct_contacts_as_imports_go_on(sim: ContactsSimulator) -> None:
    def counted(account: str = ACCOUNT) -> int:
        answer = requests.get(f"{sim.base_url}/v1/accounts/{account}", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        return answer.json()["contacts"]

    post(sim, [record("m1"), record("m2")])
    assert counted() == 2
    post(sim, [record("m2", first_name="Again"), record("m3")])
    post(sim, [record("m9")], account="other-account")
    assert counted() == 3
    assert counted("other-account") == 1
    sim.reset()
    post(sim, [record("m4")])
    assert counted() == 1


def test_the_key_is_never_echoed_logged_or_stored(sim: ContactsSimulator, tmp_path: Path) -> None:
    answers = [post(sim), post(sim, api_key="not-the-key"), post(sim, key=None)]

    for answer in answers:
        assert KEY not in answer.text
        assert KEY not in json.dumps(dict(answer.headers))
    assert KEY not in json.dumps(sim.requests())
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.name.startswith("contacts.sqlite3"))
    assert KEY.encode() not in stored


@pytest.mark.parametrize(
    ("body", "headers", "key"),
    [
        pytest.param(json.dumps({"records": [record()]}).encode(), {}, None, id="missing-idempotency-key"),
        pytest.param(json.dumps({"records": [record()]}).encode(), {}, "", id="empty-idempotency-key"),
        pytest.param(
            json.dumps({"records": [record(f"m{i}") for i in range(1001)]}).encode(), {}, "auto", id="over-1000"
        ),
        pytest.param(json.dumps({"records": []}).encode(), {}, "auto", id="no-records"),
        pytest.param(b"{not json", {}, "auto", id="not-json"),
        pytest.param(b"\xff\xfe", {}, "auto", id="not-utf8"),
        pytest.param(json.dumps({"contacts": [record()]}).encode(), {}, "auto", id="no-records-list"),
        pytest.param(json.dumps({"records": {"0": record()}}).encode(), {}, "auto", id="records-not-a-list"),
        pytest.param(json.dumps([record()]).encode(), {}, "auto", id="body-not-an-object"),
        pytest.param(json.dumps({"records": [record(), "m2"]}).encode(), {}, "auto", id="record-not-an-object"),
        pytest.param(
            b'{"records": [{"external_id": "x", "external_id": "y"}]}', {}, "auto", id="duplicate-keys"
        ),
        pytest.param(b'{"records": [NaN]}', {}, "auto", id="nan"),
        pytest.param(
            json.dumps({"records": [record()]}).encode(), {"Content-Type": "text/plain"}, "auto", id="content-type"
        ),
    ],
)
def test_malformed_requests_are_400(
    sim: ContactsSimulator, body: bytes, headers: dict[str, str], key: str | None
) -> None:
    answer = post(sim, body=body, headers=headers, key=key)

    assert answer.status_code == 400
    assert isinstance(answer.json()["error"], str)
    assert sim.contacts(ACCOUNT) == {}
    assert sim.imports(ACCOUNT) == []


def test_a_full_batch_of_1000_is_accepted(sim: ContactsSimulator) -> None:
    answer = post(sim, [record(f"m{i}") for i in range(1000)])

    assert answer.json() == {"accepted": 1000, "rejected": []}
    assert len(sim.contacts(ACCOUNT)) == 1000


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"email": MISSING}, "missing field email"),
        ({"foo": 1}, "unknown field foo"),
        ({"status": "zombie"}, "invalid status 'zombie'"),
        ({"email": "Ada@Example.com"}, "email must be lower-case"),
        ({"email": "not-an-address"}, "invalid email 'not-an-address'"),
        ({"first_name": 3}, "first_name must be a string or null"),
        ({"list_id": ""}, "list_id must be a non-empty string"),
        ({"list_id": "otherlist1"}, "external_id must be '<list_id>:<member id>'"),
        ({"changed_at": "2024-05-01 10:00:00"}, "changed_at must be 'YYYY-MM-DDTHH:MM:SSZ'"),
        ({"changed_at": "2024-02-30T10:00:00Z"}, "changed_at must be 'YYYY-MM-DDTHH:MM:SSZ'"),
        ({"changed_at": "2023-02-29T10:00:00Z"}, "changed_at must be 'YYYY-MM-DDTHH:MM:SSZ'"),
        ({"changed_at": "2024-05-01T24:00:00Z"}, "changed_at must be 'YYYY-MM-DDTHH:MM:SSZ'"),
        ({"changed_at": "2024-05-01T23:59:60Z"}, "changed_at must be 'YYYY-MM-DDTHH:MM:SSZ'"),
        ({"changed_at": "0000-05-01T10:00:00Z"}, "changed_at must be 'YYYY-MM-DDTHH:MM:SSZ'"),
        ({"changed_at": "\uff12024-05-01T10:00:00Z"}, "changed_at must be 'YYYY-MM-DDTHH:MM:SSZ'"),
        ({"email": "\u00c9va@example.com"}, "email must be lower-case"),
        ({"list_id": f"{LIST}:b"}, "external_id must be '<list_id>:<member id>'"),
        ({"vip": 1}, "vip must be a boolean"),
        ({"tags": "vip"}, "tags must be a list of strings"),
        ({"tags": ["a", 1]}, "tags must be a list of strings"),
        ({"tags": None}, "tags must be a list of strings"),
        ({"language": ["en"]}, "language must be a string or null"),
        ({"vip": "yes"}, "vip must be a boolean"),
    ],
)
def test_invalid_records_are_rejected_one_by_one(sim: ContactsSimulator, bad: dict[str, Any], reason: str) -> None:
    invalid = {name: value for name, value in record("bad", **bad).items() if value is not MISSING}

    answer = post(sim, [record("ok1"), invalid, record("ok2")])

    assert answer.status_code == 200
    assert answer.json() == {
        "accepted": 2,
        "rejected": [{"index": 1, "external_id": f"{LIST}:bad", "reason": reason}],
    }
    assert set(sim.contacts(ACCOUNT)) == {f"{LIST}:ok1", f"{LIST}:ok2"}
    assert f"{LIST}:bad" not in sim.import_counts(ACCOUNT)


def test_an_external_id_without_a_member_id_is_rejected(sim: ContactsSimulator) -> None:
    answer = post(sim, [record("ok"), record(external_id=f"{LIST}:")])

    assert answer.json() == {
        "accepted": 1,
        "rejected": [{"index": 1, "external_id": f"{LIST}:", "reason": "external_id must be '<list_id>:<member id>'"}],
    }


def test_records_outside_the_plain_ascii_shape_are_still_accepted(sim: ContactsSimulator) -> None:
    """Most batches are judged in one pydantic-core call whose schema is stricter than the
    contract; what it cannot vouch for is judged by the exact checks, never refused for that."""
    unusual = [
        record("m1", email="zo\u00eb@example.com"),
        record("m2", first_name="\u00c5sa", language=None),
        record("m3", email="m3@b\u00fccher.example"),
    ]

    answer = post(sim, [record("m0"), *unusual])

    assert answer.json() == {"accepted": 4, "rejected": []}
    assert sim.contacts(ACCOUNT)[f"{LIST}:m1"]["email"] == "zo\u00eb@example.com"


def test_a_record_without_a_usable_external_id_is_rejected_with_a_null_id(sim: ContactsSimulator) -> None:
    answer = post(sim, [record(external_id=7)])

    assert answer.json()["rejected"] == [
        {"index": 0, "external_id": None, "reason": "external_id must be a non-empty string"}
    ]


def test_reject_rules_refuse_records_by_email_domain_and_by_external_id(sim: ContactsSimulator) -> None:
    sim.faults.reject_email_domains = ["blocked.example"]
    sim.faults.reject_external_ids = [f"{LIST}:m3"]
    records = [record("m1"), record("m2", email="m2@blocked.example"), record("m3"), record("m4")]

    answer = post(sim, records)

    assert answer.json() == {
        "accepted": 2,
        "rejected": [
            {"index": 1, "external_id": f"{LIST}:m2", "reason": "email domain blocked.example is blocked"},
            {"index": 2, "external_id": f"{LIST}:m3", "reason": "rejected by rule"},
        ],
    }
    assert set(sim.contacts(ACCOUNT)) == {f"{LIST}:m1", f"{LIST}:m4"}
    assert set(sim.import_counts(ACCOUNT)) == {f"{LIST}:m1", f"{LIST}:m4"}


def test_a_replay_returns_the_stored_response_and_imports_nothing_more(sim: ContactsSimulator) -> None:
    body = json.dumps({"records": [record("m1"), record("m2", status="zombie")]}).encode()
    first = post(sim, body=body, key="batch-1")
    # A rule added later must not change the answer to a request that was already applied.
    sim.faults.reject_external_ids = [f"{LIST}:m1"]

    again = post(sim, body=body, key="batch-1", headers={"X-Correlation-ID": "run-2"})

    assert again.status_code == 200
    assert again.content == first.content
    assert first.json()["accepted"] == 1
    assert sim.import_counts(ACCOUNT) == {f"{LIST}:m1": 1}
    assert [r["replayed"] for r in sim.requests()] == [False, True]


def test_the_same_key_with_a_different_body_is_409(sim: ContactsSimulator) -> None:
    assert post(sim, [record("m1")], key="batch-1").status_code == 200

    conflict = post(sim, [record("m2")], key="batch-1")

    assert conflict.status_code == 409
    assert "error" in conflict.json()
    assert set(sim.contacts(ACCOUNT)) == {f"{LIST}:m1"}


def test_idempotency_keys_are_scoped_to_the_account(sim: ContactsSimulator) -> None:
    assert post(sim, [record("m1")], key="batch-1", account="a").status_code == 200

    assert post(sim, [record("m2")], key="batch-1", account="b").json()["accepted"] == 1
    assert set(sim.contacts("b")) == {f"{LIST}:m2"}


def test_an_older_change_is_accepted_but_does_not_overwrite(sim: ContactsSimulator) -> None:
    newer = record("m1", first_name="New", changed_at="2024-05-02T00:00:00Z")
    older = record("m1", first_name="Old", changed_at="2024-05-01T00:00:00Z")
    newest = record("m1", first_name="Newest", changed_at="2024-05-03T00:00:00Z")

    post(sim, [newer])
    assert post(sim, [older]).json() == {"accepted": 1, "rejected": []}
    assert sim.contacts(ACCOUNT)[f"{LIST}:m1"]["first_name"] == "New"

    post(sim, [newest])
    assert sim.contacts(ACCOUNT)[f"{LIST}:m1"]["first_name"] == "Newest"
    assert sim.import_counts(ACCOUNT) == {f"{LIST}:m1": 3}


@pytest.mark.faults
def test_burst_503_answers_the_next_requests_503_and_applies_nothing(sim: ContactsSimulator) -> None:
    sim.faults.burst_503 = 2

    statuses = [post(sim, [record("m1")], key="batch-1").status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert sim.import_counts(ACCOUNT) == {f"{LIST}:m1": 1}
    assert sim.faults.burst_503 == 0


@pytest.mark.faults
def test_burst_429_sends_no_retry_after(sim: ContactsSimulator) -> None:
    sim.faults.burst_429 = 1

    limited = post(sim, key="batch-1")
    retried = post(sim, key="batch-1")

    assert limited.status_code == 429
    assert "Retry-After" not in limited.headers
    assert retried.status_code == 200
    assert len(sim.imports(ACCOUNT)) == 1


@pytest.mark.faults
def test_a_bad_key_does_not_use_up_a_burst(sim: ContactsSimulator) -> None:
    sim.faults.burst_503 = 1

    assert post(sim, api_key="wrong").status_code == 401
    assert post(sim).status_code == 503


@pytest.mark.faults
def test_error_rate_fails_a_seeded_share_of_requests_before_applying_them(sim: ContactsSimulator) -> None:
    def run() -> list[int]:
        sim.faults = ContactsFaults(error_rate=0.5, seed=3)
        return [post(sim, [record(f"m{i}")]).status_code for i in range(40)]

    statuses = run()

    assert set(statuses) == {200, 503}
    assert 8 <= statuses.count(503) <= 32
    accepted = {f"{LIST}:m{i}" for i, status in enumerate(statuses) if status == 200}
    assert set(sim.import_counts(ACCOUNT)) == accepted
    sim.reset()
    assert run() == statuses


@pytest.mark.faults
def test_delay_slows_every_import_without_serialising_them(sim: ContactsSimulator) -> None:
    sim.faults.delay_s = 0.4
    statuses: list[int] = []

    started = time.monotonic()
    threads = [
        threading.Thread(target=lambda i=i: statuses.append(post(sim, [record(f"m{i}")]).status_code))
        for i in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    assert statuses == [200, 200, 200]
    assert 0.4 <= elapsed < 1.0


@pytest.mark.faults
def test_a_lost_response_still_commits_and_the_retry_gets_the_stored_answer(sim: ContactsSimulator) -> None:
    sim.faults.lose_response = 1
    records = [record("m1"), record("m2"), record("m3", status="zombie")]

    with pytest.raises(requests.ConnectionError):
        post(sim, records, key="batch-1")

    assert set(sim.contacts(ACCOUNT)) == {f"{LIST}:m1", f"{LIST}:m2"}
    retry = post(sim, records, key="batch-1")
    assert retry.status_code == 200
    assert retry.json()["accepted"] == 2
    assert retry.json()["rejected"][0]["index"] == 2
    assert sim.import_counts(ACCOUNT) == {f"{LIST}:m1": 1, f"{LIST}:m2": 1}
    assert [(r["response_lost"], r["replayed"]) for r in sim.requests()] == [(True, False), (False, True)]


def test_everything_survives_a_restart_on_the_same_file(tmp_path: Path) -> None:
    db = tmp_path / "contacts.sqlite3"
    body = json.dumps({"records": [record("m1")]}).encode()
    with ContactsSimulator(KEY, db_path=db) as first:
        answer = post(first, body=body, key="batch-1")

    with ContactsSimulator(KEY, db_path=db) as second:
        assert set(second.contacts(ACCOUNT)) == {f"{LIST}:m1"}
        assert post(second, body=body, key="batch-1").content == answer.content
        assert post(second, [record("m2")], key="batch-1").status_code == 409
        assert second.import_counts(ACCOUNT) == {f"{LIST}:m1": 1}


def test_a_file_from_before_the_audit_log_held_the_records_keeps_its_contacts(tmp_path: Path) -> None:
    """Earlier simulators kept current contacts in a table of their own; the demo's file outlives
    an upgrade, so opening one moves each contact's text to the audit row it came from."""
    db = tmp_path / "contacts.sqlite3"
    old, newer = record("m1", first_name="Old"), record("m1", first_name="New", changed_at="2024-05-02T10:00:00Z")
    with sqlite3.connect(db) as connection:
        connection.executescript(
            """
            CREATE TABLE contacts (account TEXT NOT NULL, external_id TEXT NOT NULL, record_json TEXT NOT NULL,
                changed_at TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (account, external_id));
            CREATE TABLE imports (id INTEGER PRIMARY KEY, account TEXT NOT NULL, external_id TEXT NOT NULL,
                changed_at TEXT NOT NULL, idempotency_key TEXT NOT NULL, correlation_id TEXT, received_at TEXT NOT NULL);
            CREATE TABLE idempotency (account TEXT NOT NULL, key TEXT NOT NULL, body_sha256 TEXT NOT NULL,
                response_json TEXT NOT NULL, PRIMARY KEY (account, key));
            """
        )
        connection.executemany(
            "INSERT INTO imports (account, external_id, changed_at, idempotency_key, received_at) VALUES (?, ?, ?, ?, ?)",
            [(ACCOUNT, f"{LIST}:m1", "2024-05-02T10:00:00Z", "k2", "t2"), (ACCOUNT, f"{LIST}:m1", "2024-05-01T10:00:00Z", "k1", "t1")],
        )
        connection.execute(
            "INSERT INTO contacts VALUES (?, ?, ?, ?, ?)",
            (ACCOUNT, f"{LIST}:m1", json.dumps(newer), newer["changed_at"], "t2"),
        )

    with ContactsSimulator(KEY, db_path=db) as upgraded:
        assert upgraded.contacts(ACCOUNT) == {f"{LIST}:m1": newer}
        assert upgraded.import_counts(ACCOUNT) == {f"{LIST}:m1": 2}
        assert post(upgraded, [old]).json() == {"accepted": 1, "rejected": []}
        assert upgraded.contacts(ACCOUNT) == {f"{LIST}:m1": newer}


def test_without_a_path_the_database_is_temporary() -> None:
    with ContactsSimulator(KEY) as simulator:
        assert post(simulator).status_code == 200
        assert len(simulator.contacts(ACCOUNT)) == 1


def test_admin_endpoints(sim: ContactsSimulator) -> None:
    admin = f"{sim.base_url}/_sim"
    assert requests.get(f"{admin}/faults", timeout=5).json()["burst_503"] == 0

    changed = requests.post(f"{admin}/faults", json={"burst_503": 1, "error_rate": 0}, timeout=5)
    assert changed.status_code == 200
    assert changed.json()["burst_503"] == 1 and sim.faults.burst_503 == 1
    assert requests.post(f"{admin}/faults", json={"bogus": 1}, timeout=5).status_code == 400
    assert requests.post(f"{admin}/faults", json={"burst_429": "2"}, timeout=5).status_code == 400
    assert post(sim).status_code == 503

    sim.faults.reject_external_ids = ["x"]
    assert requests.post(f"{admin}/faults/reset", timeout=5).json() == {
        "error_rate": 0.0,
        "burst_503": 0,
        "burst_429": 0,
        "delay_s": 0.0,
        "lose_response": 0,
        "reject_email_domains": [],
        "reject_external_ids": [],
        "seed": 7,
    }

    post(sim, [record("m1")], key="batch-1")
    contacts = requests.get(f"{admin}/accounts/{ACCOUNT}/contacts", timeout=5).json()
    assert contacts == {"contacts": {f"{LIST}:m1": record("m1")}}
    imports = requests.get(f"{admin}/accounts/{ACCOUNT}/imports", timeout=5).json()["imports"]
    assert [(row["external_id"], row["idempotency_key"]) for row in imports] == [(f"{LIST}:m1", "batch-1")]

    assert requests.post(f"{admin}/reset", timeout=5).status_code == 200
    assert sim.contacts(ACCOUNT) == {} and sim.imports(ACCOUNT) == [] and sim.requests() == []
    assert post(sim, [record("m2")], key="batch-1").status_code == 200


def test_unknown_paths_are_404_and_wrong_methods_405(sim: ContactsSimulator) -> None:
    assert requests.get(f"{sim.base_url}/v1/nothing", timeout=5).status_code == 404
    assert requests.post(f"{sim.base_url}/v1/accounts/{ACCOUNT}/contacts", timeout=5).status_code == 404
    assert requests.get(f"{sim.base_url}/v1/accounts/{ACCOUNT}/contacts/import", timeout=5).status_code == 405


def test_serve_runs_in_the_foreground_until_interrupted(tmp_path: Path) -> None:
    env = {**os.environ, "CONTACTS_API_KEY": KEY}
    process = subprocess.Popen(
        [sys.executable, "-c", "from importer_dagster.simulators.contacts import serve; serve()", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("Contacts API simulator on http://127.0.0.1:")
        base_url = line.rsplit(" ", 1)[1]
        answer = requests.post(
            f"{base_url}/v1/accounts/{ACCOUNT}/contacts/import",
            json={"records": [record()]},
            headers={"Authorization": f"Bearer {KEY}", "Idempotency-Key": "k1"},
            timeout=5,
        )
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert KEY not in line + output
    assert (tmp_path / ".demo" / "contacts.sqlite3").exists()
