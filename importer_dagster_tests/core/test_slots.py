"""An account's connection budget held across processes: flock files on one host, Redis leases on many.

Over the real Redis on 127.0.0.1:6379, which .ci/run starts when it is down.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from importer_dagster.core.slots import FileSlots, RedisLeases, connection_slots

REDIS_URL = "redis://127.0.0.1:6379/0"


def _hold_and_count(slots_args: tuple, counter_key: str, peak_key: str, holds: int) -> None:
    """In a process of its own: take a slot `holds` times, counting the holders in Redis meanwhile."""
    client = redis.Redis.from_url(REDIS_URL)
    slots = RedisLeases(*slots_args) if slots_args[0].startswith("redis") else FileSlots(Path(slots_args[0]), *slots_args[1:])
    for _ in range(holds):
        with slots.hold():
            now = client.incr(counter_key)
            client.eval("if tonumber(redis.call('GET', KEYS[1]) or 0) < tonumber(ARGV[1]) then "
                        "redis.call('SET', KEYS[1], ARGV[1]) end", 1, peak_key, now)
            time.sleep(0.01)
            client.decr(counter_key)


@pytest.mark.parametrize("kind", ["redis", "flock"])
def test_processes_together_never_hold_more_slots_than_the_budget(kind, tmp_path):
    name = f"test-{uuid.uuid4().hex[:8]}"
    slots_args = (REDIS_URL, name, 3) if kind == "redis" else (str(tmp_path), name, 3)
    counter_key, peak_key = f"{name}:holders", f"{name}:peak"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_hold_and_count, args=(slots_args, counter_key, peak_key, 25)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert [worker.exitcode for worker in workers] == [0] * 6
    assert int(redis.Redis.from_url(REDIS_URL).get(peak_key)) == 3, "the whole budget is used, and no more"


def _hold_forever(name: str, ready: multiprocessing.Event) -> None:
    slots = RedisLeases(REDIS_URL, name, 2, lease_s=1.0)
    with slots.hold(), slots.hold():
        ready.set()
        time.sleep(3600)


def test_a_holder_killed_with_sigkill_gives_its_leases_back_when_they_expire():
    name = f"test-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_hold_forever, args=(name, ready))
    holder.start()
    assert ready.wait(60)
    time.sleep(2.5)
    assert redis.Redis.from_url(REDIS_URL).zcard(f"importer:slots:{name}") == 2, "renewed while its holder lives"

    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    started = time.monotonic()
    with RedisLeases(REDIS_URL, name, 2, lease_s=1.0).hold():
        waited = time.monotonic() - started

    assert waited < 3, "a dead holder's lease lapses within its length"


def test_the_budget_is_shared_through_redis_when_it_is_configured(tmp_path):
    assert isinstance(connection_slots("acme", 10, slots_dir=tmp_path, redis_url=REDIS_URL), RedisLeases)
    assert isinstance(connection_slots("acme", 10, slots_dir=tmp_path, redis_url=None), FileSlots)


def test_a_thread_takes_the_slot_its_sibling_threads_left_free_at_the_first_attempt(tmp_path, monkeypatch):
    """Ten page threads share ten slots: a hold must not try, one by one, the slots the others have."""
    slots = FileSlots(tmp_path, "acme", 10)
    siblings_hold, release = threading.Barrier(10), threading.Event()

    def hold_until_released() -> None:
        with slots.hold():
            siblings_hold.wait()
            release.wait()

    siblings = [threading.Thread(target=hold_until_released) for _ in range(9)]
    for sibling in siblings:
        sibling.start()
    siblings_hold.wait()
    real_flock, attempts = fcntl.flock, []

    def counted_flock(descriptor: int, operation: int) -> None:
        attempts.append(operation)
        real_flock(descriptor, operation)

    monkeypatch.setattr(fcntl, "flock", counted_flock)
    try:
        with slots.hold():
            pass
    finally:
        release.set()
        for sibling in siblings:
            sibling.join()

    assert attempts == [fcntl.LOCK_EX | fcntl.LOCK_NB]
    with ExitStack() as every_slot:
        for _ in range(10):
            every_slot.enter_context(slots.hold())
        assert len(attempts) == 11, "each slot came back when its holder let go"
