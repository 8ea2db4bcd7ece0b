"""The hourly tick, one schedule per list group: every active list's window that just closed, in as
few runs as makes sense, reaching back over whatever the horizon missed."""

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

import dagster as dg

from importer_dagster.core import settings
from importer_dagster.core.history import ImportHistory
from importer_dagster.core.windows import (
    account_of,
    horizon_start,
    latest_closed_window,
    partition_key,
    split_partition_key,
    window_key_at,
    windows_between,
)
from importer_dagster.jobs import import_jobs
from importer_dagster.partitions import GROUPS, ListGroup, range_tags, requested_range
from importer_dagster.resources import ImporterStorage

ACCOUNT_TAG = "importer/account"
"""On runs of one account's lists: dagster.yaml lets one such run per account go at a time."""
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]


def segments(registered: Sequence[str], retired: set[str], max_lists: int | None = None) -> Iterator[tuple[str, ...]]:
    """Consecutive active lists, in registration order, at most `max_lists` (IMPORTER_LISTS_PER_RUN) at a time.

    Past a few hundred lists one run becomes one long wait; with Celery workers, smaller runs
    spread a tick over more hosts, at the cost of a run's start-up each.

    A partition range over the `list` dimension covers every key between its ends, so a run can
    only take lists that sit next to each other; a retired list ends a segment. A segment may span
    accounts: each account's connection budget holds across runs (its connection slots), and one
    run per account would mean hundreds of runs an hour at thousands of accounts.
    """
    max_lists = max_lists or settings.LISTS_PER_RUN.get()
    current: list[str] = []
    for key in registered:
        if key in retired or len(current) == max_lists:
            if current:
                yield tuple(current)
            current = []
        if key not in retired:
            current.append(key)
    if current:
        yield tuple(current)


def catch_up_windows(latest: str, now: datetime) -> list[str]:
    """The windows a tick looks back over: the whole horizon. A daemon down for days catches up in
    the same runs as a normal tick; a list silent for longer than the horizon has none of them
    imported, so its run starts at the horizon's first window, which the import then opens."""
    return windows_between(window_key_at(horizon_start(now)), latest)[:-1]


def lists_in_flight(instance: dg.DagsterInstance, group: ListGroup, registered: Sequence[str]) -> set[str]:
    """Lists a queued or running run of the group already covers (a new list's history, say): a tick
    leaves them to it rather than importing the same windows twice at once."""
    position = {key: index for index, key in enumerate(registered)}
    covered: set[str] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(job_name=group.job_name, statuses=IN_FLIGHT)):
        first, last = (split_partition_key(key)[0] for key in requested_range(run.tags))
        if first in position and last in position:
            covered.update(registered[position[first] : position[last] + 1])
    return covered


def oldest_missing(statuses: Mapping[tuple[str, str], str], list_keys: Sequence[str], windows: Sequence[str]) -> dict[str, str]:
    """Per list, the earliest looked-back window never attempted (failed ones are the retry sensor's)."""
    found = {}
    for list_key in list_keys:
        for window in windows:
            if (list_key, window) not in statuses:
                found[list_key] = window
                break
    return found


def hourly_run_requests(
    group: ListGroup, latest: str, registered: Sequence[str], retired: set[str], missing: Mapping[str, str]
) -> list[dg.RunRequest]:
    """One run per segment, from the oldest window any of its lists is missing to the latest.

    A run over a range of windows costs one Mailchimp sweep per list, so a daemon that was down
    for hours catches up in the same number of runs as a normal tick.
    """
    requests = []
    for segment in segments(registered, retired):
        start = min([latest, *(missing[key] for key in segment if key in missing)])
        accounts = {account_of(key) for key in segment}
        requests.append(
            dg.RunRequest(
                run_key=f"hourly:{latest}:{segment[0]}..{segment[-1]}",
                job_name=group.job_name,
                tags={
                    **range_tags(partition_key(segment[0], start), partition_key(segment[-1], latest)),
                    **({ACCOUNT_TAG: accounts.pop()} if len(accounts) == 1 else {}),
                },
            )
        )
    return requests


def tick(group: ListGroup, instance: dg.DagsterInstance, history: ImportHistory, retired: set[str], now: datetime):
    latest = latest_closed_window(now)
    registered = instance.get_dynamic_partitions(group.lists_partitions.name)
    retired = retired | lists_in_flight(instance, group, registered)
    active = [key for key in registered if key not in retired]
    windows = catch_up_windows(latest, now)
    statuses = history.statuses(active, windows[0], windows[-1]) if active and windows else {}
    return hourly_run_requests(group, latest, registered, retired, oldest_missing(statuses, active, windows))


def hourly_schedule(group: ListGroup) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"hourly_import_{group.name}",
        job=import_jobs[group.number],
        cron_schedule="5 * * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Five minutes past each hour (for late changes), import the hour that just closed for every "
        f"active list of {group.name}, reaching back over any window of the horizon never attempted.",
    )
    def hourly(context: dg.ScheduleEvaluationContext, storage: ImporterStorage):
        retired = set(storage.retired_lists().keys())
        requests = tick(group, context.instance, storage.history(), retired, context.scheduled_execution_time)
        if not requests:
            return dg.SkipReason(f"no active list in {group.name} to import: none registered, or all retired or "
                                 "already covered by a queued or running run")
        return requests

    return hourly


hourly_schedules = [hourly_schedule(group) for group in GROUPS]
