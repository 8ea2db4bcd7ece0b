"""The external systems the assets talk to, as Dagster resources.

Secrets never pass through resource config (which the UI displays): the Contacts API key is a
`dg.EnvVar`, shown by name only, and each account's Mailchimp key is read from the environment
variable its accounts-file entry names, at the moment a client is built. The clients themselves
are the core's; these resources only carry their settings.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr

from importer_dagster.core import settings
from importer_dagster.core.accounts import Account
from importer_dagster.core.changes import SentRecords
from importer_dagster.core.contacts import contacts_client
from importer_dagster.core.dead_letters import DeadLetters
from importer_dagster.core.files import Place, WindowFiles
from importer_dagster.core.history import HistoryFiles, ImportHistory
from importer_dagster.core.http import ApiClient, RetrySettings
from importer_dagster.core.mailchimp import mailchimp_client
from importer_dagster.core.slots import connection_slots
from importer_dagster.core.state import RetiredLists, state_engine


class _HttpApiResource(dg.ConfigurableResource):
    """Per-request retries (urllib3): see the README's retry table for how they add up."""

    retry_attempts: int = 5
    retry_backoff_s: float = 0.5
    read_timeout_s: float = 60.0

    def retry_settings(self) -> RetrySettings:
        return RetrySettings(
            attempts=self.retry_attempts, backoff_s=self.retry_backoff_s, read_timeout_s=self.read_timeout_s
        )


class MailchimpResource(_HttpApiResource):
    """Mailchimp Marketing API v3: one pooled client per account, held to its connection budget."""

    base_url: str | None = None
    """Overrides the data-centre URL for every account (a simulator or a proxy); MAILCHIMP_BASE_URL also does."""
    page_size: int = 1000
    max_connections: int = 10
    """Mailchimp allows 10 simultaneous requests per key: counted across every process of this host,
    or of every host when IMPORTER_REDIS_URL names the Redis they share."""
    state_dir: str = ""

    def client(self, account: Account, correlation_id: str) -> AbstractContextManager[ApiClient]:
        slots = connection_slots(
            account.id, self.max_connections, redis_url=settings.REDIS_URL.get(),
            slots_dir=(Path(self.state_dir) if self.state_dir else settings.state_dir()) / "mailchimp-slots",
        )
        return mailchimp_client(
            account, correlation_id, base_url=self.base_url, max_connections=self.max_connections,
            retry=self.retry_settings(), slots=slots,
        )


class ContactsApiResource(_HttpApiResource):
    """The client's contact platform; every import batch is idempotent by its Idempotency-Key.

    The key is read from the variable `api_key_env` names when a run starts, so that a missing key
    fails that run at once, in one line, instead of failing config resolution with a traceback.
    """

    base_url: str = ""
    """Empty: CONTACTS_API_URL, read when a run starts."""
    api_key_env: str = settings.CONTACTS_API_KEY_ENV
    batch_size: int = 1000
    parallelism: int = 4
    """Batches posted at once; the API's own limit, not Mailchimp's, bounds this."""

    def client(self, correlation_id: str) -> AbstractContextManager[ApiClient]:
        base_url = settings.required(
            settings.CONTACTS_API_URL.name, self.base_url or settings.CONTACTS_API_URL.get(),
            "the Contacts API's base URL, e.g. https://contacts.example.com",
        )
        api_key = settings.required(self.api_key_env, settings.secret(self.api_key_env), "the Contacts API key")
        return contacts_client(base_url, api_key, correlation_id, parallelism=self.parallelism, retry=self.retry_settings())


class ImporterStorage(dg.ConfigurableResource):
    """Where window files and the importer's state persist between steps, runs and hosts.

    The state database URL comes from IMPORTER_DATABASE_URL at run time, never from config,
    because a PostgreSQL URL carries a password; object-store credentials come from the
    environment too (AWS_ACCESS_KEY_ID and so on), as fsspec reads them.
    """

    state_dir: str = ""
    files_url: str = ""
    """Where window files and the daily history live; empty: IMPORTER_FILES_URL, else the state dir."""
    _engine: sa.Engine | None = PrivateAttr(default=None)

    def root(self) -> Path:
        return Path(self.state_dir) if self.state_dir else settings.state_dir()

    def _files(self) -> str:
        return (self.files_url or settings.files_url(self.root())).rstrip("/")

    def windows(self) -> WindowFiles:
        return WindowFiles(f"{self._files()}/windows")

    def _state_engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = state_engine(settings.database_url(self.root()))
        return self._engine

    def dead_letters(self) -> DeadLetters:
        return DeadLetters(self._state_engine())

    def sent_records(self) -> SentRecords:
        return SentRecords(self._state_engine())

    def retired_lists(self) -> RetiredLists:
        return RetiredLists(self._state_engine())

    def history(self) -> ImportHistory:
        return ImportHistory(self._state_engine())

    def history_files(self) -> HistoryFiles:
        return HistoryFiles(Place(f"{self._files()}/history"))
