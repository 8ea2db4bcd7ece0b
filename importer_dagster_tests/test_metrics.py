"""DogStatsD metrics, caught by a UDP receiver on 127.0.0.1 while a window is imported over HTTP."""

import socket
from collections import Counter
from collections.abc import Iterator

import pytest

from importer_dagster.core.settings import STATSD_HOST, STATSD_PORT

from .conftest import ACME_LIST, Importer, last_closed_window
from .test_assets import materialization_metadata


class UdpReceiver:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]

    def lines(self) -> list[str]:
        received = []
        while True:
            try:
                datagram = self.sock.recv(65535)
            except TimeoutError:
                return received
            received += datagram.decode().splitlines()


@pytest.fixture
def statsd() -> Iterator[UdpReceiver]:
    receiver = UdpReceiver()
    yield receiver
    receiver.sock.close()


def counters(lines: list[str]) -> Counter:
    """`name:value|c|#tags` summed per (name, tags)."""
    totals: Counter = Counter()
    for line in lines:
        metric, kind, *rest = line.split("|")
        name, value = metric.rsplit(":", 1)
        if kind == "c":
            totals[(name, rest[0] if rest else "")] += int(value)
    return totals


def test_an_import_sends_counts_retries_and_step_timings_tagged_by_account(
    importer: Importer, mailchimp_sim, contacts_sim, statsd, monkeypatch
):
    monkeypatch.setenv(STATSD_HOST.name, "127.0.0.1")
    monkeypatch.setenv(STATSD_PORT.name, str(statsd.port))
    contacts_sim.faults.burst_503 = 1
    mailchimp_sim.faults.malformed_member_rate = 0.05

    result = importer.materialize(f"acme.{ACME_LIST}|{last_closed_window()}")

    lines = statsd.lines()
    totals = counters(lines)
    metadata = materialization_metadata(result, "exported_batches")
    assert totals[("importer.windows.imported", "#account:acme")] == 1
    for name in ("fetched", "exported", "rejected", "dead_lettered"):
        assert totals.get((f"importer.contacts.{name}", "#account:acme"), 0) == metadata[name], name
    assert metadata["dead_lettered"] > 0
    assert totals[("importer.requests.retried", "#account:acme,api:contacts,cause:http_503")] == 1
    assert any(line.startswith("importer.step.duration:") and line.endswith("|#account:acme,step:fetch") for line in lines)
    assert all("#account:" in line for line in lines), "every metric names its account"
    assert not any(member in line for line in lines for member in ("@", ":" + ACME_LIST + ":")), "no contact in a tag"


def test_without_statsd_host_nothing_is_sent(importer: Importer, statsd, monkeypatch):
    monkeypatch.delenv(STATSD_HOST.name, raising=False)
    monkeypatch.setenv(STATSD_PORT.name, str(statsd.port))

    importer.materialize(f"acme.{ACME_LIST}|{last_closed_window()}")

    assert statsd.lines() == []
