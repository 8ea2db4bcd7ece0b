"""The external systems the assets talk to, as Dagster resources.

Secrets never pass through resource config (which the UI displays): the Contacts API key is a
`dg.EnvVar`, shown by name only, and each account's Mailchimp key is read from the environment
variable its accounts-file entry names, at the moment a client is built.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr
from requests.auth import HTTPBasicAuth

from importer_dagster.accounts import Account
from importer_dagster.http import ApiClient, ConnectionSlots, RetrySettings
from importer_dagster.storage import DeadLetters, RetiredLists, SentRecords, WindowFiles, state_engine

MAILCHIMP_BASE_URL_ENV = "MAILCHIMP_BASE_URL"
STATE_DIR_ENV = "IMPORTER_STATE_DIR"
DATABASE_URL_ENV = "IMPORTER_DATABASE_URL"


def default_state_dir() -> str:
    if os.environ.get(STATE_DIR_ENV):
        return os.environ[STATE_DIR_ENV]
    home = os.environ.get("DAGSTER_HOME") or ".dagster_home"
    return str(Path(home) / "importer")


class MailchimpResource(dg.ConfigurableResource):
    """Mailchimp Marketing API v3: one pooled client per account, held to its connection budget."""

    base_url: str | None = None
    """Overrides the data-centre URL for every account (a simulator or a proxy); MAILCHIMP_BASE_URL also does."""
    page_size: int = 1000
    max_connections: int = 10
    """Mailchimp allows 10 simultaneous requests per key, counted across every process on this host."""
    retry_attempts: int = 5
    retry_backoff_s: float = 0.5
    read_timeout_s: float = 60.0
    state_dir: str = ""

    def url_for(self, account: Account) -> str:
        configured = self.base_url or os.environ.get(MAILCHIMP_BASE_URL_ENV)
        return (configured or f"https://{account.data_centre()}.api.mailchimp.com/3.0").rstrip("/")

    @contextmanager
    def client(self, account: Account, correlation_id: str) -> Iterator[ApiClient]:
        key = account.mailchimp_api_key()
        client = ApiClient(
            base_url=self.url_for(account),
            describe=f"Mailchimp (account '{account.id}')",
            api="mailchimp",
            account=account.id,
            auth=HTTPBasicAuth("importer", key),
            headers={"X-Correlation-ID": correlation_id, "Accept": "application/json"},
            secrets=(key,),
            max_connections=self.max_connections,
            retry=RetrySettings(
                attempts=self.retry_attempts, backoff_s=self.retry_backoff_s, read_timeout_s=self.read_timeout_s
            ),
            slots=ConnectionSlots(
                Path(self.state_dir or default_state_dir()) / "mailchimp-slots", account.id, self.max_connections
            ),
        )
        try:
            yield client
        finally:
            client.close()


class ContactsApiResource(dg.ConfigurableResource):
    """The client's contact platform; every import batch is idempotent by its Idempotency-Key."""

    base_url: str
    api_key: str
    batch_size: int = 1000
    parallelism: int = 4
    """Batches posted at once; the API's own limit, not Mailchimp's, bounds this."""
    retry_attempts: int = 5
    retry_backoff_s: float = 0.5
    read_timeout_s: float = 60.0

    @contextmanager
    def client(self, correlation_id: str) -> Iterator[ApiClient]:
        client = ApiClient(
            base_url=self.base_url,
            describe="Contacts API",
            api="contacts",
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "X-Correlation-ID": correlation_id,
                "Content-Type": "application/json",
            },
            secrets=(self.api_key,),
            max_connections=self.parallelism,
            retry=RetrySettings(
                attempts=self.retry_attempts, backoff_s=self.retry_backoff_s, read_timeout_s=self.read_timeout_s
            ),
        )
        try:
            yield client
        finally:
            client.close()


class ImporterStorage(dg.ConfigurableResource):
    """Where window files and dead letters persist between steps and runs.

    The dead-letter database URL comes from IMPORTER_DATABASE_URL at run time, never from config,
    because a PostgreSQL URL carries a password.
    """

    state_dir: str = ""
    _engine: sa.Engine | None = PrivateAttr(default=None)

    def root(self) -> Path:
        return Path(self.state_dir or default_state_dir())

    def windows(self) -> WindowFiles:
        return WindowFiles(self.root() / "windows")

    def _state_engine(self) -> sa.Engine:
        if self._engine is None:
            url = os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{self.root() / 'state.sqlite3'}"
            self._engine = state_engine(url)
        return self._engine

    def dead_letters(self) -> DeadLetters:
        return DeadLetters(self._state_engine())

    def sent_records(self) -> SentRecords:
        return SentRecords(self._state_engine())

    def retired_lists(self) -> RetiredLists:
        return RetiredLists(self._state_engine())
