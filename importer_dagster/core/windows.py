"""The window model: which list, which hour of `last_changed`, and how both are written as keys.

Windows are half-open, [start, end), on Mailchimp's one-second `last_changed`, so every change
belongs to exactly one window. A list's first import opens its first window at the start (the
run decides, from the list's history: see `ListWindow.opened`), so that window is the full sync
and every later one an increment.

Dagster tracks the windows of a rolling horizon only: `IMPORTER_HORIZON_DAYS` days back to
midnight UTC. Older windows live in the importer's own history (`core.history`).

A list is keyed `<account>.<list id>`, a window `YYYY-MM-DD-HH:MM` (UTC), and a partition
`<list key>|<window key>`: the string Dagster's multi-partition key prints, dimensions in name
order. This module is the one place that writes or reads those strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

from importer_dagster.core import settings
from importer_dagster.core.settings import ConfigError, start_date

LIST_KEY_SEPARATOR = "."
PARTITION_KEY_SEPARATOR = "|"
WINDOW_KEY_FORMAT = "%Y-%m-%d-%H:%M"
WINDOW = timedelta(hours=1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)


def horizon_start(now: datetime) -> datetime:
    """The first window Dagster tracks at `now`: midnight UTC `IMPORTER_HORIZON_DAYS` days back.

    Day-aligned, so the partitions definition (and Dagster's partition-status cache, which it
    invalidates) changes once a day, not every hour.
    """
    back = (now.astimezone(timezone.utc) - timedelta(days=settings.HORIZON_DAYS.get())).date()
    return _midnight(max(start_date(), back))


FIRST_WINDOW_START = horizon_start(datetime.now(timezone.utc))
"""The horizon's first window when the code loaded, as Dagster's partitions definition has it."""
FIRST_WINDOW_KEY = FIRST_WINDOW_START.strftime(WINDOW_KEY_FORMAT)


def list_key(account_id: str, list_id: str) -> str:
    return f"{account_id}{LIST_KEY_SEPARATOR}{list_id}"


def split_list_key(key: str) -> tuple[str, str]:
    account_id, separator, list_id = key.partition(LIST_KEY_SEPARATOR)
    if not separator or not account_id or not list_id:
        raise ConfigError(f"'{key}' is not a list partition key of the form <account>.<list id>")
    return account_id, list_id


def account_of(list_or_partition_key: str) -> str:
    return list_or_partition_key.partition(LIST_KEY_SEPARATOR)[0]


def partition_key(list_key_: str, window_key: str) -> str:
    return f"{list_key_}{PARTITION_KEY_SEPARATOR}{window_key}"


def split_partition_key(key: str) -> tuple[str, str]:
    """(list key, window key), unchecked: for keys that came from Dagster's own partition store."""
    list_part, _, window_key = str(key).partition(PARTITION_KEY_SEPARATOR)
    return list_part, window_key


@dataclass(frozen=True)
class ListWindow:
    """One partition, decoded: which list, and which slice of `last_changed`."""

    account_id: str
    list_id: str
    window_key: str
    start: datetime | None
    """None for a list's first window, which reaches back to the beginning of time."""
    end: datetime

    @property
    def list_key(self) -> str:
        return list_key(self.account_id, self.list_id)

    @property
    def partition_key(self) -> str:
        return partition_key(self.list_key, self.window_key)

    def contains(self, last_changed: datetime) -> bool:
        return (self.start is None or self.start <= last_changed) and last_changed < self.end

    def bounds(self) -> dict[str, str]:
        """As shown in a materialization's metadata."""
        return {
            "window_start": self.start.isoformat() if self.start else "(open: full sync)",
            "window_end": self.end.isoformat(),
        }

    def opened(self) -> ListWindow:
        """The same window reaching back to the beginning of time: a list's first import."""
        return replace(self, start=None)

    def __str__(self) -> str:
        return f"{self.list_key} window {self.window_key}"


def decode_partition_key(key: object) -> ListWindow:
    """Accepts the plain string a `dagster/partition` tag gives as well as a multi-partition key.

    Any hour since `IMPORTER_START_DATE` decodes: whether Dagster still tracks it (the horizon) is
    the caller's question, since a re-sync imports windows older than that.
    """
    list_part, separator, window_key = str(key).partition(PARTITION_KEY_SEPARATOR)
    if not separator:
        raise ConfigError(f"'{key}' is not a partition key of the form <account>.<list>|<window>")
    account_id, list_id = split_list_key(list_part)
    try:
        start = datetime.strptime(window_key, WINDOW_KEY_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        start = None
    earliest = _midnight(start_date())
    if start is None or start.minute or start < earliest:
        raise ConfigError(
            f"'{window_key}' is not an hourly window key like 2026-11-20-03:00 at or after "
            f"{earliest.strftime(WINDOW_KEY_FORMAT)} ({settings.START_DATE.name})"
        )
    return ListWindow(account_id, list_id, window_key, start, start + WINDOW)


def windows_between(first: str, last: str) -> list[str]:
    """Every window key from `first` to `last`, both included."""
    start, end = window_start(first), window_start(last)
    return [(start + WINDOW * hour).strftime(WINDOW_KEY_FORMAT) for hour in range(int((end - start) / WINDOW) + 1)]


def window_key_at(moment: datetime) -> str:
    """The key of the window that contains `moment`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d-%H:00")


def window_start(window_key: str) -> datetime:
    return datetime.strptime(window_key, WINDOW_KEY_FORMAT).replace(tzinfo=timezone.utc)


def latest_closed_window(now: datetime) -> str:
    return window_key_at(now - WINDOW)
