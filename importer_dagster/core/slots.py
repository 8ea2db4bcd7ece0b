"""Connection slots: an account's budget of simultaneous requests, held across processes and hosts.

Mailchimp refuses an 11th simultaneous request per key. Runs, sensors and the CLI are separate
processes, and with Celery workers they are on separate hosts, so an in-process limit is not
enough. Two implementations share one `hold()`:

- `FileSlots`, the single-host default: `flock` on one file per slot. The kernel frees a slot
  whose holder died (kill -9 included), so a crashed run never leaks budget.
- `RedisLeases`, for several hosts (`IMPORTER_REDIS_URL`): each slot is a lease in one sorted set
  per account, scored by when it expires on the Redis server's clock. A holder renews its leases
  while it holds them; one that crashes stops renewing, and its slots come back within
  `lease_s`. Dagster's own limits cannot carry this budget: pools and tag limits count runs and
  ops, while the budget counts requests, and a run spanning several accounts can carry only
  one value of any tag.
"""

from __future__ import annotations

import fcntl
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import redis

LEASE_S = 30.0
"""How long a crashed holder keeps its slots; live holders renew every third of it."""


class ConnectionSlots(Protocol):
    def hold(self) -> AbstractContextManager[None]: ...


def _backoff() -> None:
    time.sleep(0.005 + random.random() * 0.02)


_held_here: set[Path] = set()
"""Slot files this process's threads hold: a hold tries the others first, and so does not spend
a system call on each slot a sibling thread already has. In a full sync ten page threads share
ten slots, and picking at random took five attempts per request, twice as many calls releasing
and taking back the interpreter lock."""
_held_here_lock = threading.Lock()


def _forget_after_fork() -> None:
    """A forked child holds none of them (its parent's threads release theirs in the parent), and
    a lock some other thread held at the fork would never be released in the child."""
    global _held_here_lock
    _held_here.clear()
    _held_here_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


class FileSlots:
    """A counting semaphore across every process on the host, one per API account."""

    def __init__(self, directory: Path, name: str, size: int):
        self._paths = [directory / f"{name}.slot{index}" for index in range(size)]
        directory.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def hold(self) -> Iterator[None]:
        while True:
            taken = self._take_one()
            if taken is not None:
                break
            _backoff()
        path, descriptor = taken
        try:
            yield
        finally:
            os.close(descriptor)
            _unmark(path)

    def _take_one(self) -> tuple[Path, int] | None:
        """A slot no thread here holds and no other process has locked, or None if all are taken."""
        for path in random.sample(self._paths, len(self._paths)):
            with _held_here_lock:
                if path in _held_here:
                    continue
                _held_here.add(path)
            descriptor = None
            try:
                descriptor = _lock_or_none(path)
            finally:
                if descriptor is None:
                    _unmark(path)
            if descriptor is not None:
                return path, descriptor
        return None


def _unmark(path: Path) -> None:
    with _held_here_lock:
        _held_here.discard(path)


def _lock_or_none(path: Path) -> int | None:
    """The slot file's descriptor, locked, or None if another process holds it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


_NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""
_ACQUIRE = _NOW_MS + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RENEW = _NOW_MS + """
for index = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[index])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
"""


class _LeaseKeeper:
    """One thread per process renews every lease the process holds, whatever client took it."""

    def __init__(self):
        self._held: dict[tuple[redis.Redis, str], dict[str, int]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, client: redis.Redis, key: str, token: str, lease_ms: int) -> None:
        with self._lock:
            self._held.setdefault((client, key), {})[token] = lease_ms
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="importer-lease-keeper", daemon=True)
                self._thread.start()

    def remove(self, client: redis.Redis, key: str, token: str) -> None:
        with self._lock:
            tokens = self._held.get((client, key), {})
            tokens.pop(token, None)
            if not tokens:
                self._held.pop((client, key), None)

    def _run(self) -> None:
        while True:
            with self._lock:
                held = [(client, key, dict(tokens)) for (client, key), tokens in self._held.items()]
            shortest_ms = min((lease for _, _, tokens in held for lease in tokens.values()), default=LEASE_S * 1000)
            for client, key, tokens in held:
                try:
                    client.register_script(_RENEW)(keys=[key], args=[max(tokens.values()), *tokens])
                except redis.RedisError:
                    continue
            time.sleep(shortest_ms / 3000)


_keeper = _LeaseKeeper()
_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _client(url: str) -> redis.Redis:
    """One pooled client per URL and process: every account's slots share its connections."""
    with _clients_lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10,
                                                 health_check_interval=30)
        return _clients[url]


class RedisLeases:
    """A counting semaphore across every host that reaches one Redis, one per API account."""

    def __init__(self, url: str, name: str, size: int, lease_s: float = LEASE_S):
        self._client = _client(url)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._key = f"importer:slots:{name}"
        self._size = size
        self._lease_ms = int(lease_s * 1000)

    @contextmanager
    def hold(self) -> Iterator[None]:
        token = uuid.uuid4().hex
        while not self._acquire(keys=[self._key], args=[self._size, self._lease_ms, token]):
            _backoff()
        _keeper.add(self._client, self._key, token, self._lease_ms)
        try:
            yield
        finally:
            _keeper.remove(self._client, self._key, token)
            self._client.zrem(self._key, token)


def connection_slots(name: str, size: int, *, slots_dir: Path, redis_url: str | None) -> ConnectionSlots:
    """Redis leases when the hosts share a Redis, `flock` files on the one host otherwise."""
    if redis_url:
        return RedisLeases(redis_url, name, size)
    return FileSlots(slots_dir, name, size)
