"""The Mailchimp simulator, exercised over real HTTP the way the importer and the official client use it."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import mailchimp_marketing
import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError

from importer_dagster.simulators.mailchimp import (
    DEMO_KEYS,
    MailchimpFaults,
    MailchimpSimulator,
    MailchimpWorld,
    SimAccount,
    SimList,
    demo_world,
    fleet_key,
    member_id_for,
)

NOW = datetime(2026, 11, 20, 3, 0, 0, tzinfo=timezone.utc)
KEY_A = "0123456789abcdef0123456789abcdef-us6"
KEY_B = "fedcba9876543210fedcba9876543210-us6"
ALPHA, SMALL, GONE, BETA = "aaaaaaaaa1", "aaaaaaaaa2", "aaaaaaaaa3", "bbbbbbbbb1"
TRIMMED = "members.id,members.email_address,members.merge_fields.FNAME,members.last_changed,total_items"


def make_world(bounds: str = "exclusive-inclusive", alpha_members: int = 3000) -> MailchimpWorld:
    return MailchimpWorld(
        accounts=[
            SimAccount(KEY_A, [SimList(ALPHA, "Alpha", alpha_members), SimList(SMALL, "Alpha Two", 50),
                               SimList(GONE, "Gone", 10, archived=True)]),
            SimAccount(KEY_B, [SimList(BETA, "Beta", 100)]),
        ],
        seed=7,
        now=NOW,
        bounds=bounds,
    )


@pytest.fixture(scope="module")
def sim() -> Iterator[MailchimpSimulator]:
    with MailchimpSimulator(make_world()) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _reset_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").faults = MailchimpFaults()


@pytest.fixture
def fresh() -> Iterator[MailchimpSimulator]:
    """For tests that change members: a simulator nobody else sees."""
    with MailchimpSimulator(make_world(alpha_members=500)) as simulator:
        yield simulator


def get(sim: MailchimpSimulator, path: str, key: str | None = KEY_A, **params: Any) -> requests.Response:
    return requests.get(sim.base_url + path, params=params, auth=("anystring", key) if key else None, timeout=10)


def all_members(sim: MailchimpSimulator, list_id: str, page: int = 1000, **params: Any) -> list[dict[str, Any]]:
    members: list[dict[str, Any]] = []
    while True:
        body = get(sim, f"/lists/{list_id}/members", count=page, offset=len(members), **params).json()
        members.extend(body["members"])
        if len(members) >= body["total_items"] or not body["members"]:
            return members


def assert_problem(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.headers["X-Request-Id"]
    problem: dict[str, Any] = response.json()
    assert set(problem) == {"type", "title", "status", "detail", "instance"}
    assert problem["status"] == status
    return problem


def test_auth_rejects_unknown_missing_and_non_basic_keys_without_echoing_them(sim: MailchimpSimulator) -> None:
    wrong = "deadbeefdeadbeefdeadbeefdeadbeef-us6"
    responses = [
        get(sim, "/ping", key=wrong),
        get(sim, "/ping", key=None),
        requests.get(sim.base_url + "/ping", headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10),
        requests.get(sim.base_url + "/ping", headers={"Authorization": f"apikey {KEY_A}"}, timeout=10),
    ]
    for response in responses:
        problem = assert_problem(response, 401)
        assert problem["title"] == "API Key Invalid"
        assert wrong not in response.text and KEY_A not in response.text
        assert KEY_A.split("-")[0] not in response.text


def test_ping(sim: MailchimpSimulator) -> None:
    response = get(sim, "/ping")
    assert response.status_code == 200
    assert response.json() == {"health_status": "Everything's Chimpy!"}


def test_lists_page_hide_archived_lists_and_trim_fields(sim: MailchimpSimulator) -> None:
    first = get(sim, "/lists", count=1).json()
    second = get(sim, "/lists", count=1, offset=1).json()
    assert first["total_items"] == second["total_items"] == 2
    assert [lst["id"] for lst in first["lists"] + second["lists"]] == [ALPHA, SMALL]
    alpha = first["lists"][0]
    assert alpha["name"] == "Alpha" and isinstance(alpha["web_id"], int) and alpha["stats"]["member_count"] == 3000

    trimmed = get(sim, "/lists", fields="lists.id,lists.stats.member_count,total_items").json()
    assert trimmed == {"lists": [{"id": ALPHA, "stats": {"member_count": 3000}},
                                 {"id": SMALL, "stats": {"member_count": 50}}], "total_items": 2}
    excluded = get(sim, "/lists", exclude_fields="lists.contact,lists._links,lists.stats,_links").json()
    assert "_links" not in excluded
    assert all({"contact", "_links", "stats"}.isdisjoint(lst) and "name" in lst for lst in excluded["lists"])
    assert get(sim, "/lists", key=KEY_B).json()["total_items"] == 1


def test_list_lookup_and_404s(sim: MailchimpSimulator) -> None:
    assert get(sim, f"/lists/{ALPHA}").json()["id"] == ALPHA
    assert get(sim, f"/lists/{ALPHA}", fields="id,name").json() == {"id": ALPHA, "name": "Alpha"}
    for path in (f"/lists/{BETA}", "/lists/0000000000", f"/lists/{GONE}", f"/lists/{BETA}/members",
                 "/lists/0000000000/members", f"/lists/{GONE}/members", "/nope"):
        assert assert_problem(get(sim, path), 404)["title"] == "Resource Not Found"


def test_members_count_above_1000_is_a_400(sim: MailchimpSimulator) -> None:
    assert_problem(get(sim, f"/lists/{ALPHA}/members", count=1001), 400)
    assert_problem(get(sim, f"/lists/{ALPHA}/members", since_last_changed="yesterday"), 400)
    assert len(get(sim, f"/lists/{ALPHA}/members", count=1000).json()["members"]) == 1000
    assert len(get(sim, f"/lists/{ALPHA}/members").json()["members"]) == 10


def test_generated_members_look_like_mailchimp(sim: MailchimpSimulator) -> None:
    members = all_members(sim, ALPHA)
    assert len(members) == 3000 and len({m["id"] for m in members}) == 3000
    for member in members:
        assert member["id"] == member_id_for(member["email_address"])
        assert member["list_id"] == ALPHA
        assert 1500 <= len(json.dumps(member)) <= 3000
    statuses = collections.Counter(m["status"] for m in members)
    assert set(statuses) <= {"subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived"}
    assert 0.7 < statuses["subscribed"] / 3000 < 0.9
    assert any(m["email_address"] != m["email_address"].lower() for m in members)
    assert any(m["merge_fields"]["FNAME"] == "" for m in members)
    assert all(m["last_changed"].endswith("+00:00") for m in members)

    changed = [datetime.fromisoformat(m["last_changed"]) for m in members]
    assert all(NOW - timedelta(hours=48) <= at < NOW for at in changed)
    per_second = collections.Counter(changed)
    assert sum(n for n in per_second.values() if n > 1) / len(changed) >= 0.08
    assert sum(1 for at in changed if at.minute == 0 and at.second == 0) >= 5


@pytest.mark.parametrize("bounds", ["exclusive-inclusive", "inclusive-exclusive"])
def test_since_and_before_follow_the_bounds_flag(bounds: str) -> None:
    since, before = NOW - timedelta(hours=10), NOW - timedelta(hours=5)
    with MailchimpSimulator(make_world(bounds=bounds, alpha_members=500)) as sim:
        on_since, after_since, before_before, on_before = list(sim.members_truth(ALPHA))[:4]
        sim.set_last_changed(ALPHA, on_since, since)
        sim.set_last_changed(ALPHA, after_since, since + timedelta(seconds=1))
        sim.set_last_changed(ALPHA, before_before, before - timedelta(seconds=1))
        sim.set_last_changed(ALPHA, on_before, before)
        served = {m["id"] for m in all_members(sim, ALPHA, page=20, since_last_changed=since.isoformat(),
                                                before_last_changed=before.isoformat())}
        truth = sim.members_truth(ALPHA)

    if bounds == "exclusive-inclusive":
        expected = {mid for mid, at in truth.items() if since < at <= before}
        assert on_before in served and on_since not in served
    else:
        expected = {mid for mid, at in truth.items() if since <= at < before}
        assert on_since in served and on_before not in served
    assert {after_since, before_before} <= served
    assert served == expected


def test_timezone_offsets_are_ignored_like_mailchimp(sim: MailchimpSimulator) -> None:
    def window(since: str, before: str) -> list[str]:
        members = get(sim, f"/lists/{ALPHA}/members", count=1000, since_last_changed=since,
                      before_last_changed=before, fields="members.id").json()["members"]
        return [m["id"] for m in members]

    as_utc = window("2026-11-19T01:00:00Z", "2026-11-19T04:00:00+00:00")
    assert as_utc
    assert window("2026-11-19T01:00:00+02:00", "2026-11-19T04:00:00-05:00") == as_utc
    assert window("2026-11-19T01:00:00.999", "2026-11-19 04:00:00") == as_utc


def test_last_changed_ascending_order_breaks_ties_by_storage_order(sim: MailchimpSimulator) -> None:
    position = {m["id"]: i for i, m in enumerate(all_members(sim, ALPHA))}
    truth = sim.members_truth(ALPHA)
    ascending = [m["id"] for m in all_members(sim, ALPHA, sort_field="last_changed", sort_dir="ASC")]
    assert ascending == sorted(position, key=lambda mid: (truth[mid], position[mid]))
    assert len(set(truth.values())) < len(truth)
    descending = [m["id"] for m in all_members(sim, ALPHA, sort_field="last_changed", sort_dir="DESC")]
    assert descending == ascending[::-1]
    by_default = [m["id"] for m in all_members(sim, ALPHA, sort_field="last_changed")]
    assert by_default == ascending


def test_total_items_counts_members_matching_the_filters(sim: MailchimpSimulator) -> None:
    since, before = NOW - timedelta(hours=20), NOW - timedelta(hours=2)
    truth = sim.members_truth(ALPHA)
    status = {m["id"]: m["status"] for m in all_members(sim, ALPHA)}
    body = get(sim, f"/lists/{ALPHA}/members", count=5, since_last_changed=since.isoformat(),
               before_last_changed=before.isoformat(), status="unsubscribed").json()
    expected = [mid for mid, at in truth.items() if since < at <= before and status[mid] == "unsubscribed"]
    assert body["total_items"] == len(expected) > 5
    assert body["list_id"] == ALPHA and body["_links"] == []
    assert [m["id"] for m in body["members"]] == expected[:5]
    assert get(sim, f"/lists/{ALPHA}/members", count=1, offset=2999).json()["total_items"] == 3000


def test_fields_and_exclude_fields_trim_nested_paths(sim: MailchimpSimulator) -> None:
    body = get(sim, f"/lists/{ALPHA}/members", count=3, fields=TRIMMED).json()
    assert set(body) == {"members", "total_items"}
    for member in body["members"]:
        assert set(member) == {"id", "email_address", "merge_fields", "last_changed"}
        assert set(member["merge_fields"]) == {"FNAME"}
    excluded = get(sim, f"/lists/{ALPHA}/members", count=3,
                   exclude_fields="members._links,members.location.region,_links").json()
    assert "_links" not in excluded
    for member in excluded["members"]:
        assert "_links" not in member and "region" not in member["location"] and "latitude" in member["location"]
    only_total = get(sim, f"/lists/{ALPHA}/members", fields="total_items").json()
    assert only_total == {"total_items": 3000}


def test_single_member_endpoint(sim: MailchimpSimulator) -> None:
    member = get(sim, f"/lists/{ALPHA}/members", count=1).json()["members"][0]
    assert get(sim, f"/lists/{ALPHA}/members/{member['id']}").json() == member
    assert member == sim.member(ALPHA, member["id"])
    assert_problem(get(sim, f"/lists/{ALPHA}/members/{'0' * 32}"), 404)


def test_connection_limit_rejects_requests_past_max_connections(sim: MailchimpSimulator) -> None:
    sim.faults.page_delay_s = 0.5
    before = sim.rejected_over_limit[KEY_A]
    barrier = threading.Barrier(12)
    statuses: list[int] = []

    def call() -> None:
        barrier.wait()
        statuses.append(get(sim, f"/lists/{ALPHA}/members", count=10).status_code)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(429) >= 2 and statuses.count(200) >= 1
    assert statuses.count(429) + statuses.count(200) == 12
    assert sim.max_in_flight[KEY_A] <= sim.world.max_connections
    assert sim.rejected_over_limit[KEY_A] - before == statuses.count(429)


def test_burst_429_and_bodyless_403_consume_their_counters(sim: MailchimpSimulator) -> None:
    sim.faults.burst_429 = 2
    assert [get(sim, "/ping").status_code for _ in range(3)] == [429, 429, 200]
    assert sim.faults.burst_429 == 0

    sim.faults.bodyless_403 = 1
    forbidden = get(sim, "/ping")
    assert forbidden.status_code == 403 and forbidden.content == b""
    assert forbidden.headers["Content-Length"] == "0"
    assert get(sim, "/ping").status_code == 200


def test_malformed_json_pages_are_unparseable(sim: MailchimpSimulator) -> None:
    sim.faults.malformed_json = 1
    broken = get(sim, f"/lists/{ALPHA}/members", count=50)
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)
    assert len(get(sim, f"/lists/{ALPHA}/members", count=50).json()["members"]) == 50


def test_error_rate_fails_about_that_fraction_of_requests(sim: MailchimpSimulator) -> None:
    sim.faults.error_rate = 0.3
    responses = [get(sim, "/ping") for _ in range(200)]
    failed = [r for r in responses if r.status_code != 200]
    assert 0.18 <= len(failed) / 200 <= 0.42
    for response in failed:
        assert assert_problem(response, response.status_code)["status"] in (500, 502, 503)


def test_slow_pages_delay_only_the_next_members_pages(sim: MailchimpSimulator) -> None:
    sim.faults.slow_pages, sim.faults.slow_page_s = 1, 0.3
    started = time.monotonic()
    get(sim, f"/lists/{ALPHA}/members")
    assert time.monotonic() - started >= 0.3
    assert sim.faults.slow_pages == 0


def test_held_pages_are_answered_only_once_released(sim: MailchimpSimulator) -> None:
    sim.faults.hold_pages = True
    answers: list[requests.Response] = []
    waiting = threading.Thread(target=lambda: answers.append(get(sim, f"/lists/{ALPHA}/members")))
    waiting.start()
    waiting.join(timeout=0.5)
    assert waiting.is_alive() and not answers, "a held page waits"
    assert get(sim, "/lists").status_code == 200, "only member pages are held"

    sim.faults.hold_pages = False
    waiting.join(timeout=10)
    assert [answer.status_code for answer in answers] == [200]


def test_malformed_members_cycle_through_bad_data_deterministically(sim: MailchimpSimulator) -> None:
    clean = get(sim, f"/lists/{ALPHA}/members", count=500).json()["members"]
    sim.faults.malformed_member_rate = 0.5
    first = get(sim, f"/lists/{ALPHA}/members", count=500)
    assert get(sim, f"/lists/{ALPHA}/members", count=500).content == first.content
    members = first.json()["members"]
    assert all(m["id"] == c["id"] and m["list_id"] == ALPHA for m, c in zip(members, clean))
    kinds: collections.Counter[str] = collections.Counter()
    for member, original in zip(members, clean):
        if member == original:
            continue
        if member.get("email_address") == "not-an-email":
            kinds["invalid email"] += 1
        elif "email_address" not in member:
            kinds["missing email"] += 1
        elif member["status"] == "zombie":
            kinds["unknown status"] += 1
        elif member["merge_fields"]["FNAME"] == "Zoë \u200b\U0001f600 Ñandú":
            kinds["odd unicode"] += 1
        elif "last_changed" not in member:
            kinds["missing last_changed"] += 1
    assert len(kinds) == 5 and all(n >= 20 for n in kinds.values())
    assert 150 <= sum(kinds.values()) <= 350
    assert "Ñandú" in first.content.decode("utf-8")


def test_touch_after_page_moves_rows_so_offset_pagination_skips_some(fresh: MailchimpSimulator) -> None:
    window = {"since_last_changed": (NOW - timedelta(hours=48)).isoformat(), "before_last_changed": NOW.isoformat(),
              "sort_field": "last_changed", "sort_dir": "ASC"}
    total = get(fresh, f"/lists/{ALPHA}/members", count=1, **window).json()["total_items"]
    fresh.faults.touch_after_page = 5
    seen = [m["id"] for m in all_members(fresh, ALPHA, page=50, **window)]
    moved = [mid for mid, at in fresh.members_truth(ALPHA).items() if at >= NOW]
    assert len(moved) >= 5 * (len(seen) // 50)
    assert set(seen[:5]) <= set(moved)
    assert len(set(seen)) < total


def test_touch_updates_fields_and_moves_last_changed(fresh: MailchimpSimulator) -> None:
    first, second, third = list(fresh.members_truth(ALPHA))[:3]
    at = NOW + timedelta(minutes=5, microseconds=123)
    old_stats = fresh.member(ALPHA, third)["stats"]
    touched = fresh.touch(ALPHA, [first, second], merge_fields={"FNAME": "Renamed"}, status="unsubscribed", at=at)
    assert touched == [first, second]
    assert fresh.touch(ALPHA, [third], stats_only=True, at=at) == [third]
    member = fresh.member(ALPHA, first)
    assert member["merge_fields"]["FNAME"] == "Renamed" and member["full_name"].startswith("Renamed")
    assert member["status"] == "unsubscribed" and member["last_changed"] == "2026-11-20T03:05:00+00:00"
    stats_member = fresh.member(ALPHA, third)
    assert stats_member["stats"]["avg_open_rate"] != old_stats["avg_open_rate"]
    truth = fresh.members_truth(ALPHA)
    assert truth[first] == truth[third] == at.replace(microsecond=0) and truth[first].tzinfo is not None

    served = get(fresh, f"/lists/{ALPHA}/members", count=1000, since_last_changed=NOW.isoformat(),
                 fields="members.id").json()
    assert {m["id"] for m in served["members"]} == {first, second, third}
    assert get(fresh, f"/lists/{ALPHA}/members", count=1, status="unsubscribed",
               since_last_changed=NOW.isoformat()).json()["total_items"] == 2

    touched = fresh.touch(ALPHA, count=4)
    assert touched == list(truth)[:4]
    assert all(fresh.members_truth(ALPHA)[mid] >= NOW for mid in touched)
    with pytest.raises(KeyError):
        fresh.touch(ALPHA, ["0" * 32])


def test_same_world_serves_byte_identical_pages() -> None:
    pages = []
    for _ in range(2):
        with MailchimpSimulator(demo_world(NOW)) as sim:
            key = DEMO_KEYS["MAILCHIMP_KEY_ACME"]
            pages.append([
                get(sim, "/lists/1a2d7ebf82/members", key=key, count=200, offset=100).content,
                get(sim, "/lists/1a2d7ebf82/members", key=key, count=1000, fields=TRIMMED,
                    sort_field="last_changed").content,
                get(sim, "/lists", key=key).content,
            ])
    assert pages[0] == pages[1]


def test_a_million_member_list_serves_trimmed_pages() -> None:
    world = MailchimpWorld([SimAccount(KEY_A, [SimList(ALPHA, "Huge", 1_000_000)])], now=NOW)
    with MailchimpSimulator(world) as sim:
        body = get(sim, f"/lists/{ALPHA}/members", count=1000, offset=5000, fields=TRIMMED,
                   since_last_changed=(NOW - timedelta(hours=24)).isoformat(), before_last_changed=NOW.isoformat(),
                   sort_field="last_changed", sort_dir="ASC").json()
        assert len(body["members"]) == 1000
        assert 400_000 < body["total_items"] < 600_000
        changed = [m["last_changed"] for m in body["members"]]
        assert changed == sorted(changed)
        sim.touch(ALPHA, count=10)
        just_before_now = (NOW - timedelta(seconds=1)).isoformat()
        assert get(sim, f"/lists/{ALPHA}/members", since_last_changed=just_before_now).json()["total_items"] == 10


def test_admin_endpoints_need_no_auth_and_never_reveal_keys(fresh: MailchimpSimulator) -> None:
    admin = fresh.base_url.removesuffix("/3.0") + "/_sim"
    assert requests.get(f"{admin}/faults", timeout=10).json()["burst_429"] == 0
    merged = requests.post(f"{admin}/faults", json={"burst_429": 1, "error_rate": 0}, timeout=10).json()
    assert merged["burst_429"] == 1 and fresh.faults.burst_429 == 1
    assert requests.post(f"{admin}/faults", json={"nope": 1}, timeout=10).status_code == 400
    assert requests.post(f"{admin}/faults", json={"burst_429": "x"}, timeout=10).status_code == 400
    assert requests.post(f"{admin}/faults", json={"hold_pages": 1}, timeout=10).status_code == 400
    assert requests.post(f"{admin}/faults", json={"hold_pages": True}, timeout=10).json()["hold_pages"] is True
    assert requests.post(f"{admin}/faults", json={"hold_pages": False}, timeout=10).json()["hold_pages"] is False
    assert get(fresh, "/ping").status_code == 429
    requests.post(f"{admin}/faults", json={"bodyless_403": 3}, timeout=10)
    assert requests.post(f"{admin}/faults/reset", timeout=10).json() == dataclasses.asdict(MailchimpFaults())

    target = list(fresh.members_truth(SMALL))[0]
    touched = requests.post(f"{admin}/lists/{SMALL}/touch",
                            json={"member_ids": [target], "at": "2026-11-20T04:00:00+00:00"}, timeout=10).json()
    assert touched == {"touched": [target]}
    truth = requests.get(f"{admin}/lists/{SMALL}/truth", timeout=10).json()["members"]
    assert len(truth) == 50 and truth[target] == "2026-11-20T04:00:00+00:00"
    assert requests.post(f"{admin}/lists/0000000000/touch", json={"count": 1}, timeout=10).status_code == 404

    get(fresh, "/ping", key="ffffffffffffffffffffffffffffffff-us6")
    stats = requests.get(f"{admin}/stats", timeout=10)
    assert stats.json()["max_in_flight"] == {"0123…": 1, "fedc…": 0}
    assert stats.json()["requests"] == 2
    for key in (KEY_A, KEY_B):
        assert key not in stats.text and key.split("-")[0] not in stats.text


def test_request_log_keeps_correlation_ids_but_never_keys(fresh: MailchimpSimulator) -> None:
    requests.get(fresh.base_url + "/ping", auth=("u", KEY_A), headers={"X-Correlation-ID": "run-1"}, timeout=10)
    get(fresh, f"/lists/{ALPHA}/members", key="nope", count=5)
    assert list(fresh.requests) == [
        {"method": "GET", "path": "/3.0/ping", "query": {}, "correlation_id": "run-1", "api_key_ok": True},
        {"method": "GET", "path": f"/3.0/lists/{ALPHA}/members", "query": {"count": "5"}, "correlation_id": None,
         "api_key_ok": False},
    ]
    assert KEY_A not in repr(fresh.requests)


def test_official_client_reads_the_simulator(sim: MailchimpSimulator) -> None:
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": KEY_A, "server": "us6"})
    client.api_client.host = sim.base_url
    assert client.ping.get() == {"health_status": "Everything's Chimpy!"}
    assert [lst["id"] for lst in client.lists.get_all_lists()["lists"]] == [ALPHA, SMALL]
    assert client.lists.get_list(ALPHA)["name"] == "Alpha"
    page = client.lists.get_list_members_info(
        ALPHA, count=1000, offset=0,
        since_last_changed=(NOW - timedelta(hours=12)).isoformat(), before_last_changed=NOW.isoformat(),
        sort_field="last_changed", sort_dir="ASC", fields=["members.id", "members.email_address", "total_items"],
    )
    assert 0 < len(page["members"]) == page["total_items"]
    assert set(page["members"][0]) == {"id", "email_address"}
    member_id = page["members"][0]["id"]
    assert client.lists.get_list_member(ALPHA, member_id)["id"] == member_id

    intruder = mailchimp_marketing.Client()
    intruder.set_config({"api_key": "00000000000000000000000000000000-us6", "server": "us6"})
    intruder.api_client.host = sim.base_url
    with pytest.raises(ApiClientError) as raised:
        intruder.ping.get()
    assert raised.value.status_code == 401


@contextlib.contextmanager
def served(*argv: str) -> Iterator[str]:
    """`serve` in a process of its own, as `importer-dagster simulate-mailchimp` runs it; yields its first line."""
    process = subprocess.Popen(
        [sys.executable, "-c", f"from importer_dagster.simulators.mailchimp import serve; serve({['--port', '0', *argv]!r})"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_prints_its_address_and_serves_the_demo_world() -> None:
    with served("--members", "20", "--seed", "3") as line:
        assert line.startswith("Mailchimp simulator on http://127.0.0.1:") and line.endswith("/3.0")
        base_url = line.rsplit(" ", 1)[1]
        lists = requests.get(base_url + "/lists", auth=("u", DEMO_KEYS["MAILCHIMP_KEY_GLOBEX"]), timeout=10).json()
        assert [(lst["id"], lst["stats"]["member_count"]) for lst in lists["lists"]] == [("b2c3d4e5f6", 20)]


def test_serve_fleet_gives_each_account_its_own_key_and_lists_with_about_fifty_changes_an_hour() -> None:
    with served("--world", "fleet", "--accounts", "3", "--lists-per-account", "2") as line:
        base_url = line.rsplit(" ", 1)[1]
        seen = []
        for account in range(3):
            lists = requests.get(base_url + "/lists", auth=("u", fleet_key(account)), timeout=10).json()["lists"]
            seen += [lst["id"] for lst in lists]
            assert len(lists) == 2 and all(lst["stats"]["member_count"] == 2400 for lst in lists)
        assert len(set(seen)) == 6
        now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        hour = {"since_last_changed": (now - timedelta(hours=2)).isoformat(),
                "before_last_changed": (now - timedelta(hours=1)).isoformat()}
        changed = requests.get(base_url + f"/lists/{seen[0]}/members", params={**hour, "count": 1},
                               auth=("u", fleet_key(0)), timeout=10).json()["total_items"]
        assert 25 <= changed <= 75


def test_serve_ends_the_48_hours_of_changes_where_it_is_told() -> None:
    """The full-sync benchmark puts a whole list in one window this way, whatever the hour."""
    with served("--members", "200", "--history-ends", "2026-01-01T01:00:00+00:00") as line:
        base_url = line.rsplit(" ", 1)[1]
        members = requests.get(
            base_url + "/lists/1a2d7ebf82/members", params={"count": 1000, "fields": "members.last_changed"},
            auth=("u", DEMO_KEYS["MAILCHIMP_KEY_ACME"]), timeout=10,
        ).json()["members"]
    changed = [datetime.fromisoformat(member["last_changed"]) for member in members]
    assert len(changed) == 200
    assert all(datetime(2025, 12, 30, 1, tzinfo=timezone.utc) <= at < datetime(2026, 1, 1, 1, tzinfo=timezone.utc) for at in changed)
