"""The jobs: one import job per list group, and the operator's replay and re-sync."""

from collections.abc import Iterator
from datetime import datetime, timezone

import dagster as dg

from importer_dagster.asset_keys import HISTORY_KEY
from importer_dagster.assets import RETRY_POLICY, as_failure, import_assets
from importer_dagster.compaction import compact
from importer_dagster.core.accounts import current_accounts
from importer_dagster.core.http import HttpError
from importer_dagster.core.importing import ImportRun, Selection
from importer_dagster.core.replay import replay_dead_letters
from importer_dagster.core.settings import ConfigError
from importer_dagster.core.stages import Stage
from importer_dagster.core.windows import (
    ListWindow,
    decode_partition_key,
    horizon_start,
    partition_key,
    split_list_key,
    windows_between,
)
from importer_dagster.partitions import GROUPS, registered_lists
from importer_dagster.resources import ContactsApiResource, ImporterStorage, MailchimpResource

import_jobs = [
    dg.define_asset_job(
        group.job_name,
        selection=dg.AssetSelection.assets(assets),
        description=f"Fetch, transform and export windows of {group.name}'s lists end to end, with every check.",
    )
    for group, assets in zip(GROUPS, import_assets, strict=True)
]


class ReplayFilter(dg.Config):
    account: str | None = None
    list_key: str | None = None
    window: str | None = None


@dg.op(retry_policy=RETRY_POLICY)
def replay_open_dead_letters(
    context: dg.OpExecutionContext, config: ReplayFilter, contacts_api: ContactsApiResource, storage: ImporterStorage
) -> None:
    """Each replayed window is recorded as a materialization of `exported_batches`, so its history shows it."""
    try:
        _replay(context, config, contacts_api, storage)
    except (ConfigError, HttpError) as error:
        raise as_failure(error) from None


def _replay(
    context: dg.OpExecutionContext, config: ReplayFilter, contacts_api: ContactsApiResource, storage: ImporterStorage
) -> None:
    dead_letters = storage.dead_letters()
    rows = dead_letters.rows(account=config.account, list_key=config.list_key, window=config.window)
    accounts = current_accounts()
    for list_key, window_key in sorted({(row.list_key, row.window) for row in rows}):
        account = accounts.get(split_list_key(list_key)[0])
        with contacts_api.client(context.run.run_id) as client:
            stats = replay_dead_letters(
                client, account.contacts_account, dead_letters, list_key, window_key,
                run_id=context.run.run_id, batch_size=contacts_api.batch_size,
            )
        window = decode_partition_key(partition_key(list_key, window_key))
        context.log.info(f"{window}: replayed {stats.replayed}, exported {stats.exported}, still dead {stats.still_dead}")
        context.log_event(
            _history_event(
                context.instance, window, "replay of dead letters",
                {"window": window.partition_key, "replayed": stats.replayed, "exported": stats.exported,
                 "still_dead": stats.still_dead},
            )
        )


def _history_event(instance: dg.DagsterInstance, window: ListWindow, what: str, metadata: dict) -> dg.AssetMaterialization:
    """On the window's own partition while the horizon holds it, on its day of import_history after."""
    group = registered_lists(instance).get(window.list_key)
    if group is not None and window.start >= horizon_start(datetime.now(timezone.utc)):
        return dg.AssetMaterialization(asset_key=group.asset_keys[Stage.EXPORTED], partition=window.partition_key,
                                       description=what, metadata=metadata)
    return dg.AssetMaterialization(asset_key=HISTORY_KEY, partition=window.window_key[:10],
                                   description=f"{what}: {window}", metadata=metadata)


@dg.job(description="Send open dead letters again after their cause was fixed; resolved letters keep their history.")
def replay_dead_letters_job():
    replay_open_dead_letters()


class ResyncRange(dg.Config):
    list_key: str
    first: str
    """The first window, e.g. 2026-06-01-00:00."""
    last: str
    """The last window, included."""
    force_export: bool = True
    """Send every record again, changed or not: a re-sync is for a target that lost data."""


class _LoggedReport:
    def __init__(self, log):
        self.log = log

    def materialized(self, stage: Stage, window: ListWindow, metadata: dict) -> None:
        if stage == Stage.EXPORTED:
            self.log.info(f"{window}: fetched {metadata['fetched']}, exported {metadata['exported']}, "
                          f"skipped {metadata['skipped']}, rejected {metadata['rejected']}")


@dg.op(retry_policy=RETRY_POLICY)
def resync_windows(
    context: dg.OpExecutionContext, config: ResyncRange, mailchimp: MailchimpResource,
    contacts_api: ContactsApiResource, storage: ImporterStorage,
) -> None:
    """Import windows older than the horizon for one list, then fold them into their days' history."""
    try:
        for event in _resync(context, config, mailchimp, contacts_api, storage):
            context.log_event(event)
    except (ConfigError, HttpError) as error:
        raise as_failure(error) from None


def _resync(
    context: dg.OpExecutionContext, config: ResyncRange, mailchimp: MailchimpResource,
    contacts_api: ContactsApiResource, storage: ImporterStorage,
) -> Iterator[dg.AssetMaterialization]:
    now = datetime.now(timezone.utc)
    first, last = (decode_partition_key(partition_key(config.list_key, key)) for key in (config.first, config.last))
    windows = [decode_partition_key(partition_key(config.list_key, key))
               for key in windows_between(first.window_key, last.window_key)]
    if not windows:
        raise ConfigError(f"{config.first} comes after {config.last}: nothing to re-sync")
    if windows[-1].start >= horizon_start(now):
        raise ConfigError(
            f"window {windows[-1].window_key} is inside the horizon: materialize it as a partition (with the "
            "importer/force-export=true tag to send every record)"
        )
    outcome = ImportRun(
        run_id=context.run.run_id, selection=Selection(frozenset(Stage)), mailchimp=mailchimp, contacts=contacts_api,
        stores=storage, report=_LoggedReport(context.log), force_export=config.force_export,
    ).execute(windows)
    days = sorted({window.window_key[:10] for window in windows})
    yield from compact(context.instance, storage, days, context.log, now)
    if outcome.failures:
        raise dg.Failure(description=f"{len(outcome.failures)} of {len(windows)} windows failed: "
                         + "; ".join(f"{key}: {reason}" for key, reason in list(outcome.failures.items())[:20]),
                         allow_retries=outcome.retryable)


@dg.job(description="Import an old range of one list's windows again (after the target lost data, say), and record "
                    "it in import_history.")
def resync_job():
    resync_windows()
