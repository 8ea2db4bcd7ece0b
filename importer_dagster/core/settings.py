"""Every environment setting the importer reads, with its default and its allowed values.

A setting is read when it is used, not when the code loads, so a deployment changes it with a
restart of nothing more than the process that reads it. A value outside its range is a
`ConfigError` whose one line names the variable and what it accepts: a typo must never silently
turn a safeguard off (a share of `5` would let every broken window through).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration mistake a user must fix; its message is one line and names the culprit."""


def _share(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError
    return value


def _positive(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError
    return value


def _non_negative(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError
    return value


def _whole(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError
    return value


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < minimum:
            raise ValueError
        return value

    return parse


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError
    return value


@dataclass(frozen=True)
class Setting(Generic[T]):
    name: str
    default: T
    parse: Callable[[str], T] = str
    accepts: str = ""
    """What the error says the variable accepts."""
    hidden: bool = False
    """Shown only as set or unset: its value can carry a password."""

    def get(self) -> T:
        raw = os.environ.get(self.name, "").strip()
        if not raw:
            return self.default
        try:
            return self.parse(raw)
        except ValueError:
            raise ConfigError(f"{self.name}={raw!r} {self.accepts}") from None


ACCOUNTS_FILE = Setting("IMPORTER_ACCOUNTS_FILE", None)
START_DATE = Setting("IMPORTER_START_DATE", date(2026, 11, 1), date.fromisoformat, "is not a date of the form YYYY-MM-DD")
STATE_DIR = Setting("IMPORTER_STATE_DIR", None)
FILES_URL = Setting("IMPORTER_FILES_URL", None)
DATABASE_URL = Setting("IMPORTER_DATABASE_URL", None, hidden=True)
REDIS_URL = Setting("IMPORTER_REDIS_URL", None, hidden=True)
CELERY_BROKER_URL = Setting("IMPORTER_CELERY_BROKER_URL", None, hidden=True)
CELERY_BACKEND_URL = Setting("IMPORTER_CELERY_BACKEND_URL", None, hidden=True)
MAILCHIMP_BASE_URL = Setting("MAILCHIMP_BASE_URL", None)
MAX_INVALID_SHARE = Setting(
    "IMPORTER_MAX_INVALID_SHARE", 0.2, _share, "must be a share between 0 and 1 (0.2 means 20%)"
)
RESEND_AFTER_S = Setting(
    "IMPORTER_RESEND_AFTER_S", float(timedelta(days=7).total_seconds()), _positive,
    "must be a positive number of seconds",
)
RETRY_COOLDOWN_S = Setting(
    "IMPORTER_RETRY_COOLDOWN_S", 900.0, _non_negative, "must be a number of seconds, 0 or more"
)
MAX_AUTO_RETRIES = Setting("IMPORTER_MAX_AUTO_RETRIES", 3, _whole, "must be a whole number, 0 or more")
HORIZON_DAYS = Setting(
    "IMPORTER_HORIZON_DAYS", 7, _at_least(3), "must be a whole number of days, 3 or more (the catch-up looks back 2)"
)
LIST_GROUPS = Setting("IMPORTER_LIST_GROUPS", 1, _at_least(1), "must be a whole number, 1 or more")
LISTS_PER_RUN = Setting(
    "IMPORTER_LISTS_PER_RUN", 200, _at_least(1),
    "must be a whole number, 1 or more (lists one scheduled run imports; smaller spreads a tick over more workers)",
)
ALERT_WEBHOOK_URL = Setting("ALERT_WEBHOOK_URL", None)
UI_URL = Setting("DAGSTER_UI_URL", "http://127.0.0.1:3000")
STATSD_HOST = Setting("STATSD_HOST", None)
STATSD_PORT = Setting("STATSD_PORT", 8125, _port, "must be a port number between 1 and 65535")
DAGSTER_HOME = Setting("DAGSTER_HOME", None)
CONTACTS_API_URL = Setting("CONTACTS_API_URL", None)
CONTACTS_API_KEY_ENV = "CONTACTS_API_KEY"
"""The variable holding the Contacts API key: the resource's config names it, never holds the key."""

ALL = (
    ACCOUNTS_FILE, START_DATE, HORIZON_DAYS, LIST_GROUPS, LISTS_PER_RUN, STATE_DIR, FILES_URL, DATABASE_URL, REDIS_URL, CELERY_BROKER_URL,
    CELERY_BACKEND_URL, MAX_INVALID_SHARE, RESEND_AFTER_S,
    RETRY_COOLDOWN_S, MAX_AUTO_RETRIES, MAILCHIMP_BASE_URL, CONTACTS_API_URL, ALERT_WEBHOOK_URL, UI_URL, STATSD_HOST, STATSD_PORT,
    DAGSTER_HOME,
)


def check_all() -> None:
    """Every setting parsed once: a run refuses to start on any mistake, named in one line."""
    for setting in ALL:
        setting.get()
    start_date()


def describe() -> list[tuple[str, str, str]]:
    """(variable, what it is now, what it accepts) for each setting, as `importer-dagster settings` prints it."""
    rows = []
    for setting in ALL:
        raw = os.environ.get(setting.name, "").strip()
        try:
            value = setting.get()
            if setting.hidden:
                shown = "set" if raw else "unset"
            else:
                shown = raw or ("unset" if value is None else f"unset (default {value})")
        except ConfigError as error:
            shown = f"INVALID: {error}"
        rows.append((setting.name, shown, setting.accepts.removeprefix("must be ").removeprefix("is not ")))
    return rows


def start_date() -> date:
    """The first window's day; a day in the future would leave the partition space empty."""
    start = START_DATE.get()
    if start > datetime.now(timezone.utc).date():
        raise ConfigError(f"{START_DATE.name}={start.isoformat()} is in the future: no window would exist yet")
    return start


def resend_after() -> timedelta:
    return timedelta(seconds=RESEND_AFTER_S.get())


def state_dir() -> Path:
    """Window files and connection slots; beside the Dagster instance unless set."""
    configured = STATE_DIR.get()
    if configured:
        return Path(configured)
    return Path(DAGSTER_HOME.get() or ".dagster_home") / "importer"


def files_url(state_root: Path) -> str:
    """Window files and the daily history: a folder on this host unless an object store every
    worker host shares is named (`s3://bucket/prefix`)."""
    return (FILES_URL.get() or str(state_root)).rstrip("/")


def database_url(state_root: Path) -> str:
    """The state database's URL; a PostgreSQL one carries a password, so it is never config."""
    return DATABASE_URL.get() or f"sqlite:///{state_root / 'state.sqlite3'}"


def secret(name: str) -> str:
    """A key from the variable that config names; read at each use, so a rotated key needs no reload."""
    return os.environ.get(name, "").strip()


def required(name: str, value: str | None, what: str) -> str:
    if not value:
        raise ConfigError(f"{name} is not set: {what}")
    return value
