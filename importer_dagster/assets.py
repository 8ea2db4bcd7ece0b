"""The three assets of an import, materialized by one op, window by window.

`mailchimp_contacts` (a window of Mailchimp members), `contact_records` (mapped and validated) and
`exported_batches` (imported into the Contacts API) are separate assets with their own partition
status, but one op produces them. That is what lets a single run cover many lists (the hourly tick)
or a list's whole history (one Mailchimp sweep) and still report each window on its own: a window
that fails stays failed while the others in the same run are materialized, and a retry redoes only
what is missing. The op can be subset, so exporting again from stored records needs no refetch.

The work itself lives in `pipeline`; this module decodes partitions, records outcomes, and turns
errors into what Dagster should do with them.
"""

import os
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import dagster as dg
from dagster._core.events import DagsterEventType

from importer_dagster import metrics
from importer_dagster.accounts import ConfigError, current_accounts
from importer_dagster.checks import (
    CheckOutcomes,
    WindowBlocked,
    WindowCounts,
    max_invalid_share,
    window_check_specs,
)
from importer_dagster.http import ApiClient, HttpError
from importer_dagster.partitions import ListWindow, decode_partition_key, list_windows_partitions
from importer_dagster.pipeline import (
    RECORDS,
    SOURCE,
    ChangeDetection,
    Exporter,
    ExportStats,
    RecordsStage,
    TransformStats,
    WindowStream,
    export_window,
    sweep_windows,
    transform_window,
)
from importer_dagster.resources import ContactsApiResource, ImporterStorage, MailchimpResource
from importer_dagster.storage import WindowNotMaterialized

FORCE_EXPORT_TAG = "importer/force-export"
"""`true` sends every record again, changed or not: from a UI backfill's tags or `--tags` on the CLI."""
RESEND_AFTER_ENV = "IMPORTER_RESEND_AFTER_S"
DEFAULT_RESEND_AFTER = timedelta(days=7)


def resend_after() -> timedelta:
    raw = os.environ.get(RESEND_AFTER_ENV)
    if not raw:
        return DEFAULT_RESEND_AFTER
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise ConfigError(f"{RESEND_AFTER_ENV}={raw!r} must be a positive number of seconds")
    return timedelta(seconds=seconds)


RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
GROUP = "contacts_import"
SOURCE_KEY = dg.AssetKey(SOURCE)
RECORDS_KEY = dg.AssetKey(RECORDS)
EXPORTED_KEY = dg.AssetKey("exported_batches")
EXPECTED_ERRORS = (HttpError, ConfigError, WindowNotMaterialized, WindowBlocked)

import_specs = [
    dg.AssetSpec(
        SOURCE_KEY,
        description="Members of one Mailchimp list whose last_changed falls in the window, as Parquet parts.",
        kinds={"mailchimp", "parquet"},
        group_name=GROUP,
        skippable=True,
    ),
    dg.AssetSpec(
        RECORDS_KEY,
        deps=[SOURCE_KEY],
        description="Contacts API records mapped and validated from the window; invalid members become dead letters.",
        kinds={"parquet", "pydantic"},
        group_name=GROUP,
        skippable=True,
    ),
    dg.AssetSpec(
        EXPORTED_KEY,
        deps=[RECORDS_KEY],
        description="The window's records imported into the Contacts API in idempotent batches.",
        kinds={"api"},
        group_name=GROUP,
        skippable=True,
    ),
]


@dataclass
class _Outcome:
    failures: dict[str, str] = field(default_factory=dict)
    retryable: bool = False
    checks: CheckOutcomes = field(default_factory=CheckOutcomes.empty)

    def fail(self, windows: list[ListWindow], error: Exception) -> None:
        for window in windows:
            self.failures[window.partition_key] = str(error)
        self.retryable |= getattr(error, "retryable", False)


def _bounds(window: ListWindow) -> dict:
    return {
        "window_start": window.start.isoformat() if window.start else "(open: full sync)",
        "window_end": window.end.isoformat(),
    }


class _ImportRun:
    def __init__(
        self,
        context: dg.AssetExecutionContext,
        mailchimp: MailchimpResource,
        contacts_api: ContactsApiResource,
        storage: ImporterStorage,
    ):
        self.context = context
        self.mailchimp = mailchimp
        self.contacts_api = contacts_api
        self.storage = storage
        self.run_id = context.run.run_id
        self.selected = context.selected_asset_keys
        self.accounts = current_accounts()
        self.threshold = max_invalid_share()
        self.done = self._materialized_earlier_in_this_run()
        self.outcome = _Outcome()

    def _materialized_earlier_in_this_run(self) -> set[tuple[dg.AssetKey, str]]:
        """What an earlier attempt of this step already finished: a retry must not redo it."""
        records = self.context.instance.get_records_for_run(
            self.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=1_000_000
        ).records
        return {
            (record.event_log_entry.asset_materialization.asset_key, record.event_log_entry.asset_materialization.partition)
            for record in records
        }

    def _pending(self, key: dg.AssetKey, window: ListWindow) -> bool:
        return key in self.selected and (key, window.partition_key) not in self.done

    def _materialized(self, key: dg.AssetKey, window: ListWindow, metadata: dict) -> None:
        self.context.log_event(
            dg.AssetMaterialization(asset_key=key, partition=window.partition_key, metadata={**metadata, **_bounds(window)})
        )

    def windows_by_list(self) -> dict[str, list[ListWindow]]:
        try:
            windows = [decode_partition_key(key) for key in self.context.partition_keys]
        except ConfigError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        grouped: dict[str, list[ListWindow]] = defaultdict(list)
        for window in windows:
            grouped[window.list_key].append(window)
        return grouped

    def _exporter(self, window: ListWindow, contacts: ApiClient, open_letters: dict[str, set[str]]) -> Exporter:
        changes = ChangeDetection(
            self.storage.sent_records(),
            resend_after(),
            datetime.now(timezone.utc),
            force_run_id=self.run_id if self.context.run.tags.get(FORCE_EXPORT_TAG) == "true" else None,
        )
        return Exporter(
            contacts,
            self.accounts.get(window.account_id).contacts_account,
            self.storage.dead_letters(),
            window,
            previously_dead=open_letters.get(window.window_key, set()),
            run_id=self.run_id,
            batch_size=self.contacts_api.batch_size,
            parallelism=self.contacts_api.parallelism,
            changes=changes,
        )

    def _streams_everything(self, windows: list[ListWindow]) -> bool:
        return all(self._pending(key, window) for window in windows for key in (SOURCE_KEY, RECORDS_KEY, EXPORTED_KEY))

    def fetch(self, windows: list[ListWindow], contacts: ApiClient) -> dict[str, WindowStream]:
        """Sweeps the list once; when the run does all three steps, they stream together."""
        pending = [window for window in windows if self._pending(SOURCE_KEY, window)]
        if not pending:
            return {}
        account = self.accounts.get(pending[0].account_id)
        if not account.allows(pending[0].list_id):
            raise ConfigError(f"list {pending[0].list_key} is not in account '{account.id}''s allow-list")
        files = self.storage.windows()
        everything = self._streams_everything(windows)
        open_letters = self.storage.dead_letters().open_member_ids(pending[0].list_key) if everything else {}
        streams = [
            WindowStream(
                window,
                files,
                records=RecordsStage(files, self.storage.dead_letters(), window, self.run_id) if everything else None,
                exporter=self._exporter(window, contacts, open_letters) if everything else None,
                max_invalid_share=self.threshold,
            )
            for window in pending
        ]
        started = time.monotonic()
        with self.mailchimp.client(account, self.run_id) as client:
            stats = sweep_windows(
                client,
                streams,
                page_size=self.mailchimp.page_size,
                parallelism=self.mailchimp.max_connections,
                log=self.context.log,
            )
        metrics.timing("step.duration", time.monotonic() - started, account.id, step="fetch")
        for window in pending:
            fetched = stats[window.window_key]
            self._materialized(
                SOURCE_KEY,
                window,
                {"fetched": fetched.fetched, "pages_fetched": fetched.pages, "repair_pages": fetched.repair_pages,
                 "duration_s": dg.FloatMetadataValue(round(fetched.duration_s, 3))},
            )
        return {stream.window.partition_key: stream for stream in streams if stream.exporter}

    def _transformed(self, window: ListWindow, stats: TransformStats) -> None:
        if stats.invalid:
            self.context.log.warning(f"{window}: {stats.invalid} members dead-lettered by validation")
        self._materialized(
            RECORDS_KEY,
            window,
            {"transformed": stats.transformed, "dead_lettered": stats.invalid, "duplicates": stats.duplicates},
        )

    def transform(self, window: ListWindow) -> None:
        if self._pending(RECORDS_KEY, window):
            started = time.monotonic()
            stats = transform_window(self.storage.windows(), self.storage.dead_letters(), window, self.run_id)
            metrics.timing("step.duration", time.monotonic() - started, window.account_id, step="transform")
            self._transformed(window, stats)

    def _checked_counts(self, window: ListWindow, already_sent: int = 0) -> tuple[WindowCounts, dict]:
        """The window's counts, after the checks that run before export; raises if it is blocked."""
        files = self.storage.windows()
        source = files.manifest(SOURCE, window.list_key, window.window_key)
        records = files.manifest(RECORDS, window.list_key, window.window_key)
        counts = WindowCounts(source["fetched"], records["transformed"], records["invalid"], records["duplicates"])
        checks = self.outcome.checks
        checks.windows += 1
        if counts.duplicates:
            checks.duplicated.append(window.partition_key)
        if counts.too_invalid(self.threshold):
            checks.too_invalid.append(window.partition_key)
            sent = f" ({already_sent} valid records went out before the share crossed it)" if already_sent else ""
            raise WindowBlocked(
                f"{window}: {counts.invalid_share:.0%} of members are invalid (threshold {self.threshold:.0%}); "
                f"not exported{sent}. See `importer-dagster dead-letters`."
            )
        return counts, source

    def _exported(self, window: ListWindow, counts: WindowCounts, source: dict, stats: ExportStats) -> None:
        counts = replace(counts, exported=stats.exported, skipped=stats.skipped, rejected=stats.rejected)
        if not counts.reconciles():
            self.outcome.checks.unreconciled.append(window.partition_key)
        account = window.account_id
        metrics.count("windows.imported", 1, account)
        for name in ("fetched", "exported", "skipped", "rejected", "dead_lettered"):
            metrics.count(f"contacts.{name}", getattr(counts, name), account)
        self._materialized(
            EXPORTED_KEY,
            window,
            {
                "fetched": counts.fetched,
                "pages_fetched": source["pages"],
                "transformed": counts.transformed,
                "dead_lettered": counts.dead_lettered,
                "exported": counts.exported,
                "skipped": counts.skipped,
                "rejected": counts.rejected,
                "batches": stats.batches,
                "fetch_duration_s": dg.FloatMetadataValue(round(source["duration_s"], 3)),
            },
        )

    def export(self, window: ListWindow, contacts: ApiClient) -> None:
        counts, source = self._checked_counts(window)
        if self._pending(EXPORTED_KEY, window):
            started = time.monotonic()
            open_letters = self.storage.dead_letters().open_member_ids(window.list_key)
            stats = export_window(self._exporter(window, contacts, open_letters), self.storage.windows(), self.context.log)
            metrics.timing("step.duration", time.monotonic() - started, window.account_id, step="export")
            self._exported(window, counts, source, stats)

    def finish_stream(self, stream: WindowStream) -> None:
        window = stream.window
        self._transformed(window, stream.records.stats)
        try:
            counts, source = self._checked_counts(window, already_sent=stream.exporter.sent)
        except WindowBlocked:
            stream.exporter.close()
            raise
        stats = stream.finish_export()
        if stats is None:
            raise stream.export_error
        self.context.log.info(f"{window}: exported {stats.exported}, rejected {stats.rejected} in {stats.batches} batches")
        self._exported(window, counts, source, stats)

    def import_list(self, windows: list[ListWindow], contacts: ApiClient) -> None:
        try:
            streams = self.fetch(windows, contacts)
        except EXPECTED_ERRORS as error:
            self.context.log.error(f"{windows[0].list_key}: {error}")
            self.outcome.fail(windows, error)
            return
        try:
            for window in windows:
                try:
                    if window.partition_key in streams:
                        self.finish_stream(streams[window.partition_key])
                        continue
                    self.transform(window)
                    if EXPORTED_KEY in self.selected or self.context.selected_asset_check_keys:
                        self.export(window, contacts)
                except EXPECTED_ERRORS as error:
                    self.context.log.error(f"{window}: {error}")
                    self.outcome.fail([window], error)
        finally:
            for stream in streams.values():
                stream.exporter.close()

    def execute(self) -> Iterator[dg.AssetCheckResult]:
        """One Contacts API session serves every window of the run: a tick covers hundreds of lists."""
        with self.contacts_api.client(self.run_id) as contacts:
            for windows in self.windows_by_list().values():
                self.import_list(windows, contacts)
        selected_checks = self.context.selected_asset_check_keys if self.outcome.checks.windows else set()
        for result in self.outcome.checks.results(self.threshold):
            if dg.AssetCheckKey(result.asset_key, result.check_name) in selected_checks:
                yield result
        self._raise_for_failures()

    def _raise_for_failures(self) -> None:
        failures = self.outcome.failures
        if not failures:
            return
        total = len(self.context.partition_keys)
        shown = "; ".join(f"{key}: {reason}" for key, reason in list(failures.items())[:20])
        more = f" (and {len(failures) - 20} more)" if len(failures) > 20 else ""
        raise dg.Failure(
            description=f"{len(failures)} of {total} windows failed: {shown}{more}",
            metadata={"failed_partitions": dg.MetadataValue.json(sorted(failures))},
            allow_retries=self.outcome.retryable,
        )


@dg.multi_asset(
    name="import_contacts",
    specs=import_specs,
    check_specs=window_check_specs,
    partitions_def=list_windows_partitions,
    retry_policy=RETRY_POLICY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
)
def import_contacts(
    context: dg.AssetExecutionContext,
    mailchimp: MailchimpResource,
    contacts_api: ContactsApiResource,
    storage: ImporterStorage,
) -> Iterator[dg.AssetCheckResult]:
    yield from _ImportRun(context, mailchimp, contacts_api, storage).execute()


import_assets = [import_contacts]
