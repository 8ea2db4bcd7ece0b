"""The three assets of an import: a Mailchimp window, its records, and their export.

Each asset is partitioned by (list, hourly window) and can run over a range of partitions in a
single run (`BackfillPolicy.single_run`), which is how a list's history or every list's latest hour
is imported without a run per partition. The work itself lives in `pipeline`; these functions
decode partitions, classify failures for Dagster, and report metadata.
"""

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from importer_dagster.accounts import ConfigError, current_accounts
from importer_dagster.http import FatalHttpError
from importer_dagster.partitions import ListWindow, decode_partition_key, list_windows_partitions
from importer_dagster.pipeline import export_window, fetch_windows, transform_window
from importer_dagster.resources import ContactsApiResource, ImporterStorage, MailchimpResource
from importer_dagster.storage import WindowNotMaterialized

RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
_COMMON = dict(
    partitions_def=list_windows_partitions,
    retry_policy=RETRY_POLICY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="contacts_import",
)


@contextmanager
def _failures_classified() -> Iterator[None]:
    """A mistake in configuration or a 4xx cannot heal by retrying: fail once, with the reason."""
    try:
        yield
    except (FatalHttpError, ConfigError, WindowNotMaterialized) as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None


def _windows(context: dg.AssetExecutionContext) -> list[ListWindow]:
    with _failures_classified():
        return [decode_partition_key(key) for key in context.partition_keys]


def _by_list(windows: list[ListWindow]) -> dict[str, list[ListWindow]]:
    grouped: dict[str, list[ListWindow]] = defaultdict(list)
    for window in windows:
        grouped[window.list_key].append(window)
    return grouped


def _add_metadata(context: dg.AssetExecutionContext, window: ListWindow, metadata: dict) -> None:
    bounds = {
        "window_start": window.start.isoformat() if window.start else "(open: full sync)",
        "window_end": window.end.isoformat(),
    }
    partition = window.partition_key if len(context.partition_keys) > 1 else None
    context.add_asset_metadata({**metadata, **bounds}, partition_key=partition)


@dg.asset(
    **_COMMON,
    kinds={"mailchimp"},
    description="Members of one Mailchimp list whose last_changed falls in the window, as Parquet parts.",
)
def mailchimp_contacts(
    context: dg.AssetExecutionContext, mailchimp: MailchimpResource, storage: ImporterStorage
) -> None:
    accounts = current_accounts()
    for list_key, windows in _by_list(_windows(context)).items():
        with _failures_classified():
            account = accounts.get(windows[0].account_id)
            if not account.allows(windows[0].list_id):
                raise ConfigError(f"list {list_key} is not in account '{account.id}''s allow-list")
            with mailchimp.client(account, context.run.run_id) as client:
                stats = fetch_windows(
                    client,
                    windows,
                    storage.windows(),
                    page_size=mailchimp.page_size,
                    parallelism=mailchimp.max_connections,
                    log=context.log,
                )
        for window in windows:
            fetched = stats[window.window_key]
            _add_metadata(
                context,
                window,
                {
                    "fetched": fetched.fetched,
                    "pages_fetched": fetched.pages,
                    "duration_s": dg.FloatMetadataValue(round(fetched.duration_s, 3)),
                },
            )


@dg.asset(
    **_COMMON,
    deps=[mailchimp_contacts],
    kinds={"pandas", "pydantic"},
    description="Contacts API records mapped and validated from the window; invalid members become dead letters.",
)
def contact_records(context: dg.AssetExecutionContext, storage: ImporterStorage) -> None:
    for window in _windows(context):
        with _failures_classified():
            stats = transform_window(storage.windows(), storage.dead_letters(), window, context.run.run_id)
        if stats.invalid:
            context.log.warning(f"{window}: {stats.invalid} members dead-lettered by validation")
        _add_metadata(context, window, {"transformed": stats.transformed, "dead_lettered": stats.invalid})


@dg.asset(
    **_COMMON,
    deps=[contact_records],
    kinds={"api"},
    description="The window's records imported into the Contacts API in idempotent batches.",
)
def exported_batches(
    context: dg.AssetExecutionContext, contacts_api: ContactsApiResource, storage: ImporterStorage
) -> None:
    accounts = current_accounts()
    files = storage.windows()
    for window in _windows(context):
        with _failures_classified():
            account = accounts.get(window.account_id)
            source = files.manifest("mailchimp_contacts", window.list_key, window.window_key)
            records = files.manifest("contact_records", window.list_key, window.window_key)
            with contacts_api.client(context.run.run_id) as client:
                stats = export_window(
                    client,
                    account.contacts_account,
                    files,
                    storage.dead_letters(),
                    window,
                    run_id=context.run.run_id,
                    batch_size=contacts_api.batch_size,
                    parallelism=contacts_api.parallelism,
                    log=context.log,
                )
        _add_metadata(
            context,
            window,
            {
                "fetched": source["fetched"],
                "pages_fetched": source["pages"],
                "transformed": records["transformed"],
                "dead_lettered": records["invalid"],
                "exported": stats.exported,
                "rejected": stats.rejected,
                "batches": stats.batches,
                "fetch_duration_s": dg.FloatMetadataValue(round(source["duration_s"], 3)),
            },
        )


import_assets = [mailchimp_contacts, contact_records, exported_batches]
