"""Fixtures that start real simulators on 127.0.0.1 and point the importer at them, without Dagster.

Both conftests take them from here: the package-wide one adds Dagster instances on top, and the
core's one uses them alone, so the core's tests run where Dagster cannot even be imported.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from importer_dagster.simulators.contacts import ContactsSimulator
from importer_dagster.simulators.mailchimp import MailchimpSimulator, MailchimpWorld, SimAccount, SimList
from importer_dagster.simulators.server import Request, Response, SimulatorServer
from importer_dagster.throwaway_object_store import make_bucket, object_store_environment, seaweedfs

REPO = Path(__file__).resolve().parents[1]
ACME_KEY = "0a1b2c3d4e5f60718293a4b5c6d7e8f9-us6"
GLOBEX_KEY = "f9e8d7c6b5a40392817f6e5d4c3b2a10-us19"
CONTACTS_KEY = "contacts-secret-5b8e1c7a"
ACME_LIST = "aaaaaaaaa1"
ACME_SMALL_LIST = "aaaaaaaaa2"
GLOBEX_LIST = "bbbbbbbbb1"
NOW = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)
"""Mid-hour, so that the hour before it is a closed window full of recent changes."""

ACCOUNTS_YAML = """
accounts:
  - id: acme
    mailchimp_api_key_env: TEST_MAILCHIMP_KEY_ACME
    contacts_account: acme-contacts
  - id: globex
    mailchimp_api_key_env: TEST_MAILCHIMP_KEY_GLOBEX
    contacts_account: globex-contacts
    lists: [bbbbbbbbb1]
"""


def free_ports(count: int) -> list[int]:
    """Ports free now, all different: held open together until every one is chosen."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def window_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d-%H:00")


def last_closed_window(now: datetime = NOW) -> str:
    return window_key(now - timedelta(hours=1))


def build_world(now: datetime = NOW, acme_members: int = 3000, history_hours: int = 6, **kwargs) -> MailchimpWorld:
    return MailchimpWorld(
        accounts=[
            SimAccount(ACME_KEY, [SimList(ACME_LIST, "Acme News", acme_members), SimList(ACME_SMALL_LIST, "Acme VIP", 40)]),
            SimAccount(GLOBEX_KEY, [SimList(GLOBEX_LIST, "Globex Weekly", 500), SimList("bbbbbbbbb2", "Not allowed", 10)]),
        ],
        now=now,
        history_hours=history_hours,
        **kwargs,
    )


@pytest.fixture
def mailchimp_sim():
    with MailchimpSimulator(build_world()) as simulator:
        yield simulator


@pytest.fixture
def contacts_sim(tmp_path):
    with ContactsSimulator(CONTACTS_KEY, db_path=tmp_path / "contacts.sqlite3") as simulator:
        yield simulator


@pytest.fixture
def importer_env(tmp_path, monkeypatch, mailchimp_sim, contacts_sim):
    accounts_file = tmp_path / "accounts.yaml"
    accounts_file.write_text(ACCOUNTS_YAML)
    environment = {
        "IMPORTER_ACCOUNTS_FILE": str(accounts_file),
        "IMPORTER_STATE_DIR": str(tmp_path / "state"),
        "TEST_MAILCHIMP_KEY_ACME": ACME_KEY,
        "TEST_MAILCHIMP_KEY_GLOBEX": GLOBEX_KEY,
        "MAILCHIMP_BASE_URL": mailchimp_sim.base_url,
        "CONTACTS_API_URL": contacts_sim.base_url,
        "CONTACTS_API_KEY": CONTACTS_KEY,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str
    bucket: str
    """s3://<bucket>"""


@pytest.fixture(scope="session")
def object_store(tmp_path_factory) -> Iterator[ObjectStore]:
    """A real S3-compatible store on 127.0.0.1 (SeaweedFS) and a bucket, one per test session."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        yield ObjectStore(endpoint, make_bucket(endpoint))


@pytest.fixture
def s3_url(object_store, monkeypatch) -> str:
    """An empty folder of the object store, with the environment that reaches it: its s3:// URL."""
    for name, value in object_store_environment(object_store.endpoint).items():
        monkeypatch.setenv(name, value)
    return f"{object_store.bucket}/{uuid.uuid4().hex[:12]}"


class WebhookReceiver:
    """A local Slack-compatible webhook: alerts are proven by what arrives here over HTTP."""

    def __init__(self):
        self.messages: list[dict] = []
        self._server = SimulatorServer(self._receive)

    def _receive(self, request: Request) -> Response:
        self.messages.append(request.json())
        return Response.json(200, {"ok": True})

    @property
    def url(self) -> str:
        return f"{self._server.root_url}/hooks/alerts"

    def __enter__(self) -> "WebhookReceiver":
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()


@pytest.fixture
def webhook(monkeypatch):
    with WebhookReceiver() as receiver:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("DAGSTER_UI_URL", "http://127.0.0.1:3000")
        yield receiver
