"""Fixtures that start real simulators on 127.0.0.1 and point the importer at them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
from dagster._core.storage.defs_state.base import set_defs_state_storage
import pytest

from importer_dagster.assets import import_assets
from importer_dagster.partitions import LISTS_PARTITIONS_NAME
from importer_dagster.resources import ContactsApiResource, ImporterStorage, MailchimpResource
from importer_dagster.simulators.contacts import ContactsSimulator
from importer_dagster.simulators.mailchimp import MailchimpSimulator, MailchimpWorld, SimAccount, SimList
from importer_dagster.simulators.server import Request, Response, SimulatorServer

from .postgres import fresh_dagster_home

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


@pytest.fixture(autouse=True)
def fresh_definitions_state_context():
    """Give each test Dagster's definitions-state context as it found it.

    Dagster keeps the current instance's definitions-state storage in a ContextVar, and evaluating
    a schedule or sensor against a test instance can leave it set; once that instance is gone,
    the next Definitions to load fails with "undefined DagsterInstance weakref".
    """
    with set_defs_state_storage(None):
        yield


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


@pytest.fixture
def postgres_home(tmp_path):
    """A fresh PostgreSQL database behind the repository's own dagster.yaml, dropped afterwards."""
    with fresh_dagster_home(tmp_path) as home_and_environment:
        yield home_and_environment


@pytest.fixture
def postgres_instance(postgres_home, importer_env, monkeypatch):
    home, environment = postgres_home
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as pg_instance:
        pg_instance.add_dynamic_partitions(
            LISTS_PARTITIONS_NAME, [f"acme.{ACME_LIST}", f"acme.{ACME_SMALL_LIST}", f"globex.{GLOBEX_LIST}"]
        )
        yield pg_instance


@pytest.fixture
def instance(importer_env):
    with dg.instance_for_test() as test_instance:
        test_instance.add_dynamic_partitions(
            LISTS_PARTITIONS_NAME, [f"acme.{ACME_LIST}", f"acme.{ACME_SMALL_LIST}", f"globex.{GLOBEX_LIST}"]
        )
        yield test_instance


def fast_resources(state_dir: Path | str, contacts_url: str, **mailchimp_overrides) -> dict[str, dg.ConfigurableResource]:
    """Production resources with short backoffs, so retry paths take milliseconds in tests."""
    return {
        "mailchimp": MailchimpResource(retry_backoff_s=0.01, state_dir=str(state_dir), **mailchimp_overrides),
        "contacts_api": ContactsApiResource(
            base_url=contacts_url, api_key=dg.EnvVar("CONTACTS_API_KEY"), retry_backoff_s=0.01
        ),
        "storage": ImporterStorage(state_dir=str(state_dir)),
    }


@dataclass
class Importer:
    instance: dg.DagsterInstance
    resources: dict
    storage: ImporterStorage

    def materialize(
        self, partition_key: str, raise_on_error: bool = True, tags: dict | None = None, selection: list[str] | None = None
    ):
        return dg.materialize(
            import_assets,
            partition_key=partition_key,
            instance=self.instance,
            resources=self.resources,
            raise_on_error=raise_on_error,
            tags=tags,
            selection=selection,
        )


@pytest.fixture
def importer(instance, importer_env, contacts_sim) -> Importer:
    resources = fast_resources(importer_env["IMPORTER_STATE_DIR"], contacts_sim.base_url)
    return Importer(instance, resources, resources["storage"])


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
