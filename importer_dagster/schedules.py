"""The hourly tick: every active list's window that just closed, in as few runs as makes sense."""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import dagster as dg

from importer_dagster.accounts import split_list_key
from importer_dagster.jobs import import_contacts_job
from importer_dagster.partition_status import EXPORTED_KEY
from importer_dagster.partitions import (
    FIRST_WINDOW_KEY,
    LISTS_PARTITIONS_NAME,
    WINDOW_KEY_FORMAT,
    latest_closed_window,
    list_windows_partitions,
    range_tags,
    window_key_at,
)
from importer_dagster.resources import ImporterStorage

ACCOUNT_TAG = "importer/account"
MAX_LISTS_PER_RUN = 200
"""A run writes a few events per window; past a few hundred lists, one run becomes one long wait."""
CATCH_UP_HOURS = 48


@dataclass(frozen=True)
class Segment:
    account_id: str
    list_keys: tuple[str, ...]


def account_segments(
    registered: Sequence[str], retired: set[str], max_lists: int = MAX_LISTS_PER_RUN
) -> Iterator[Segment]:
    """Consecutive active lists of one account, in registration order.

    A partition range over the `list` dimension covers every key between its ends, so a run can
    only take lists that sit next to each other; a retired list or another account's list ends it.
    One account per run keeps the `importer/account` tag (and so the per-account run limit) true.
    """
    current: list[str] = []
    account = None
    for key in registered:
        key_account = split_list_key(key)[0]
        if key in retired or key_account != account or len(current) == max_lists:
            if current:
                yield Segment(account, tuple(current))
            current, account = [], key_account
        if key not in retired:
            current.append(key)
    if current:
        yield Segment(account, tuple(current))


def catch_up_windows(latest: str) -> list[str]:
    """The windows a tick looks back over: the full sync, and the last CATCH_UP_HOURS hours."""
    end = datetime.strptime(latest, WINDOW_KEY_FORMAT).replace(tzinfo=timezone.utc)
    recent = [window_key_at(end - timedelta(hours=hours)) for hours in range(CATCH_UP_HOURS, 0, -1)]
    return sorted({FIRST_WINDOW_KEY, *(key for key in recent if key >= FIRST_WINDOW_KEY)} - {latest})


def oldest_missing(
    statuses: Mapping[str, dg.AssetPartitionStatus | None], list_keys: Sequence[str], windows: Sequence[str]
) -> dict[str, str]:
    """Per list, the earliest looked-back window never attempted (failed ones are the retry sensor's)."""
    found = {}
    for list_key in list_keys:
        for window in windows:
            if statuses.get(f"{list_key}|{window}") is None:
                found[list_key] = window
                break
    return found


def hourly_run_requests(
    latest: str, registered: Sequence[str], retired: set[str], missing: Mapping[str, str]
) -> list[dg.RunRequest]:
    """One run per segment, from the oldest window any of its lists is missing to the latest.

    A run over a range of windows costs one Mailchimp sweep per list, so a daemon that was down
    for hours catches up in the same number of runs as a normal tick.
    """
    requests = []
    for segment in account_segments(registered, retired):
        start = min([latest, *(missing[key] for key in segment.list_keys if key in missing)])
        requests.append(
            dg.RunRequest(
                run_key=f"hourly:{latest}:{segment.list_keys[0]}..{segment.list_keys[-1]}",
                tags={
                    **range_tags(f"{segment.list_keys[0]}|{start}", f"{segment.list_keys[-1]}|{latest}"),
                    ACCOUNT_TAG: segment.account_id,
                },
            )
        )
    return requests


@dg.schedule(
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    job=import_contacts_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Five minutes past each hour (for late changes), import the hour that just closed "
    "for every active list, reaching back over any window of the last two days never attempted.",
)
def hourly_import_schedule(context: dg.ScheduleEvaluationContext, storage: ImporterStorage):
    latest = latest_closed_window(context.scheduled_execution_time)
    instance = context.instance
    registered = instance.get_dynamic_partitions(LISTS_PARTITIONS_NAME)
    retired = set(storage.retired_lists().keys())
    active = [key for key in registered if key not in retired]
    windows = catch_up_windows(latest)
    keys = [f"{list_key}|{window}" for list_key in active for window in windows]
    statuses = (instance.get_status_by_partition(EXPORTED_KEY, keys, list_windows_partitions) if keys else None) or {}
    requests = hourly_run_requests(latest, registered, retired, oldest_missing(statuses, active, windows))
    if not requests:
        return dg.SkipReason("no active list is registered yet: run `importer-dagster discover`")
    return requests
