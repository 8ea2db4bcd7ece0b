"""Counters and timings for dashboards outside Dagster, sent as DogStatsD over UDP.

Set STATSD_HOST (and STATSD_PORT, default 8125) to turn them on. Unset, no client exists and every
call returns at once. Metrics are tagged by account only, never by contact, so their cardinality
stays that of the client list.
"""

from functools import cache

from datadog.dogstatsd import DogStatsd

from importer_dagster.core import settings

NAMESPACE = "importer"


@cache
def _client(host: str | None, port: int) -> DogStatsd | None:
    if not host:
        return None
    # Unbuffered, one datagram per call: a run's last figures leave before its process exits.
    return DogStatsd(host=host, port=port, namespace=NAMESPACE, disable_telemetry=True)


def _statsd() -> DogStatsd | None:
    return _client(settings.STATSD_HOST.get(), settings.STATSD_PORT.get())


def count(name: str, value: int, account: str, **tags: str) -> None:
    client = _statsd()
    if client is not None and value:
        client.increment(name, value, tags=_tags(account, tags))


def timing(name: str, seconds: float, account: str, **tags: str) -> None:
    client = _statsd()
    if client is not None:
        client.timing(name, seconds * 1000, tags=_tags(account, tags))


def _tags(account: str, tags: dict[str, str]) -> list[str]:
    return [f"account:{account}", *(f"{key}:{value}" for key, value in sorted(tags.items()))]
