"""The hourly tick: every active list's window that just closed, in as few runs as makes sense."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dagster as dg

from importer_dagster.accounts import split_list_key
from importer_dagster.jobs import import_contacts_job
from importer_dagster.partitions import LISTS_PARTITIONS_NAME, latest_closed_window, range_tags
from importer_dagster.resources import ImporterStorage

ACCOUNT_TAG = "importer/account"
MAX_LISTS_PER_RUN = 200
"""A run writes a few events per window; past a few hundred lists, one run becomes one long wait."""


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


def hourly_run_requests(window: str, registered: Sequence[str], retired: set[str]) -> list[dg.RunRequest]:
    return [
        dg.RunRequest(
            run_key=f"hourly:{window}:{segment.list_keys[0]}..{segment.list_keys[-1]}",
            tags={
                **range_tags(f"{segment.list_keys[0]}|{window}", f"{segment.list_keys[-1]}|{window}"),
                ACCOUNT_TAG: segment.account_id,
            },
        )
        for segment in account_segments(registered, retired)
    ]


@dg.schedule(
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    job=import_contacts_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Five minutes past each hour (for late changes), import the hour that just closed, "
    "for every active list. Missed ticks are caught up by the scheduler (max_catchup_runs).",
)
def hourly_import_schedule(context: dg.ScheduleEvaluationContext, storage: ImporterStorage):
    window = latest_closed_window(context.scheduled_execution_time)
    registered = context.instance.get_dynamic_partitions(LISTS_PARTITIONS_NAME)
    requests = hourly_run_requests(window, registered, set(storage.retired_lists().keys()))
    if not requests:
        return dg.SkipReason("no active list is registered yet: run `importer-dagster discover`")
    return requests
