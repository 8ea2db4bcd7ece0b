"""The partition space: one key per (Mailchimp list, hourly window of `last_changed`).

Windows are half-open, [start, end), on Mailchimp's one-second `last_changed`, so every change
belongs to exactly one window. The first window is open at its start and is therefore the list's
full sync; every later window is an increment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import dagster as dg

from importer_dagster.accounts import ConfigError, split_list_key

START_DATE_ENV = "IMPORTER_START_DATE"
DEFAULT_START_DATE = "2026-11-01"
LISTS_PARTITIONS_NAME = "mailchimp_lists"


def start_date() -> str:
    raw = os.environ.get(START_DATE_ENV, DEFAULT_START_DATE)
    try:
        parsed = date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"{START_DATE_ENV}={raw!r} is not a date of the form YYYY-MM-DD") from None
    if parsed > datetime.now(timezone.utc).date():
        raise ConfigError(f"{START_DATE_ENV}={raw} is in the future: no window would exist yet")
    return f"{parsed.isoformat()}-00:00"


lists_partitions = dg.DynamicPartitionsDefinition(name=LISTS_PARTITIONS_NAME)
windows_partitions = dg.HourlyPartitionsDefinition(start_date=start_date(), timezone="UTC")
list_windows_partitions = dg.MultiPartitionsDefinition(
    {"list": lists_partitions, "window": windows_partitions}
)

WINDOW_KEY_FORMAT = "%Y-%m-%d-%H:%M"
FIRST_WINDOW_KEY = windows_partitions.get_first_partition_key()
FIRST_WINDOW_START = datetime.strptime(FIRST_WINDOW_KEY, WINDOW_KEY_FORMAT).replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class ListWindow:
    """One partition, decoded: which list, and which slice of `last_changed`."""

    account_id: str
    list_id: str
    window_key: str
    start: datetime | None
    """None for the first window, which reaches back to the beginning of time."""
    end: datetime

    @property
    def list_key(self) -> str:
        return f"{self.account_id}.{self.list_id}"

    @property
    def partition_key(self) -> str:
        return f"{self.list_key}|{self.window_key}"

    def contains(self, last_changed: datetime) -> bool:
        return (self.start is None or self.start <= last_changed) and last_changed < self.end

    def __str__(self) -> str:
        return f"{self.list_key} window {self.window_key}"


def decode_partition_key(key: str | dg.MultiPartitionKey) -> ListWindow:
    """Accepts the plain string a `dagster/partition` tag gives as well as a MultiPartitionKey."""
    list_part, separator, window_key = str(key).partition("|")
    if not separator:
        raise ConfigError(f"'{key}' is not a partition key of the form <account>.<list>|<window>")
    account_id, list_id = split_list_key(list_part)
    try:
        start = datetime.strptime(window_key, WINDOW_KEY_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        start = None
    if start is None or start.minute or start < FIRST_WINDOW_START:
        raise ConfigError(
            f"'{window_key}' is not an hourly window key like 2026-11-20-03:00 at or after {FIRST_WINDOW_KEY}"
        )
    end = start + timedelta(hours=1)
    return ListWindow(account_id, list_id, window_key, None if window_key == FIRST_WINDOW_KEY else start, end)


def window_key_at(moment: datetime) -> str:
    """The key of the window that contains `moment`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d-%H:00")


def latest_closed_window(now: datetime) -> str:
    return window_key_at(now - timedelta(hours=1))


def range_tags(first: str, last: str) -> dict[str, str]:
    """Tags that make one run cover the partition range first..last (a rectangle of lists × windows)."""
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
