"""One import run: the windows of its partition keys, list by list, each reported on its own.

A run may cover many lists (the hourly tick) or a list's whole history (one Mailchimp sweep).
Each window still succeeds or fails by itself: a failing window is recorded and the others go
on, and a retry of the run's step redoes only what `Selection.done` does not list. Dagster is
reached only through the `Reporter` the caller passes, so this module runs without it.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from importer_dagster.core import metrics, settings
from importer_dagster.core.accounts import Account, current_accounts
from importer_dagster.core.changes import ChangeDetection, SentRecords
from importer_dagster.core.contacts import verify_account
from importer_dagster.core.dead_letters import DeadLetters
from importer_dagster.core.export import Exporter, ExportStats, export_window
from importer_dagster.core.files import WindowFiles, WindowNotMaterialized
from importer_dagster.core.history import ImportHistory
from importer_dagster.core.http import ApiClient, HttpError
from importer_dagster.core.quality import CheckVerdicts, WindowBlocked, WindowCounts
from importer_dagster.core.records import RecordsStage, TransformStats, transform_window
from importer_dagster.core.settings import ConfigError
from importer_dagster.core.stages import Stage
from importer_dagster.core.stream import WindowStream
from importer_dagster.core.sweep import FetchStats, sweep_windows
from importer_dagster.core.windows import WINDOW, ListWindow, account_of, horizon_start, window_key_at

EXPECTED_ERRORS = (HttpError, ConfigError, WindowNotMaterialized, WindowBlocked)
"""Failures of one window or list, reported as such; anything else is a bug and fails the step."""


class MailchimpAccess(Protocol):
    page_size: int
    max_connections: int

    def client(self, account: Account, correlation_id: str) -> AbstractContextManager[ApiClient]: ...


class ContactsAccess(Protocol):
    batch_size: int
    parallelism: int

    def client(self, correlation_id: str) -> AbstractContextManager[ApiClient]: ...


class Stores(Protocol):
    def windows(self) -> WindowFiles: ...

    def dead_letters(self) -> DeadLetters: ...

    def sent_records(self) -> SentRecords: ...

    def history(self) -> ImportHistory: ...


class Reporter(Protocol):
    """Where a run's outcomes go: Dagster's event log, in the assets."""

    log: logging.Logger

    def materialized(self, stage: Stage, window: ListWindow, metadata: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Selection:
    """What this attempt of the run still has to do."""

    stages: frozenset[Stage]
    done: frozenset[tuple[Stage, str]] = frozenset()
    """(stage, partition key) materialized by an earlier attempt of the same run."""
    checks: bool = False
    """The window checks were selected: they need the export step's counts."""

    def pending(self, stage: Stage, window: ListWindow) -> bool:
        return stage in self.stages and (stage, window.partition_key) not in self.done

    def everything(self, windows: Iterable[ListWindow]) -> bool:
        return all(self.pending(stage, window) for window in windows for stage in Stage)


@dataclass
class RunOutcome:
    failures: dict[str, str] = field(default_factory=dict)
    """partition key → one-line reason."""
    retryable: bool = False
    """Some failure may pass on a retry; a run whose failures are all fatal is not retried."""
    verdicts: CheckVerdicts = field(default_factory=CheckVerdicts)
    threshold: float = 0.0

    def fail(self, windows: list[ListWindow], error: Exception) -> None:
        for window in windows:
            self.failures[window.partition_key] = str(error)
        self.retryable |= getattr(error, "retryable", False)


def by_list(windows: Iterable[ListWindow], history: ImportHistory, now: datetime) -> dict[str, list[ListWindow]]:
    """Each list's windows in order, the horizon's first window opened where nothing before it was imported.

    Windows inside the horizon are Dagster partitions, and the automation fills any gap among them;
    the hour before the horizon's first window is not. A list with no import of that hour (a new
    list, or one silent for longer than the horizon) has its first window reach back to the
    beginning of time: its full sync, which covers whatever it missed.
    """
    grouped: dict[str, list[ListWindow]] = defaultdict(list)
    for window in sorted(windows, key=lambda window: (window.list_key, window.window_key)):
        grouped[window.list_key].append(window)
    first = horizon_start(now)
    starting = [key for key, windows in grouped.items() if windows[0].start == first]
    if starting:
        imported = history.succeeded_at(starting, window_key_at(first - WINDOW))
        for list_key in starting:
            if list_key not in imported:
                grouped[list_key][0] = grouped[list_key][0].opened()
    return grouped


class ImportRun:
    def __init__(
        self,
        *,
        run_id: str,
        selection: Selection,
        mailchimp: MailchimpAccess,
        contacts: ContactsAccess,
        stores: Stores,
        report: Reporter,
        force_export: bool = False,
    ):
        self.run_id = run_id
        self.selection = selection
        self.mailchimp = mailchimp
        self.contacts = contacts
        self.stores = stores
        self.report = report
        self.force_export = force_export
        settings.check_all()
        self.accounts = current_accounts()
        self.outcome = RunOutcome(threshold=settings.MAX_INVALID_SHARE.get())
        self.resend_after = settings.resend_after()
        self.history = stores.history()
        report.log.info(
            f"{settings.MAX_INVALID_SHARE.name}={self.outcome.threshold}, "
            f"{settings.RESEND_AFTER_S.name}={self.resend_after.total_seconds():g}"
            + (", forced export: every record is sent" if force_export else "")
        )

    def execute(self, windows: Iterable[ListWindow]) -> RunOutcome:
        """One Contacts API session serves every window of the run: a tick covers hundreds of lists.

        Raises what fails the whole run (a missing Contacts API key, a key the API refuses);
        everything else fails only its list or window, in the outcome.
        """
        lists = by_list(windows, self.history, datetime.now(timezone.utc))
        with self.contacts.client(self.run_id) as contacts:
            if Stage.EXPORTED in self.selection.stages or self.selection.checks:
                self.verify_credentials(contacts, {account_of(key) for key in lists})
            for list_windows in lists.values():
                self.import_list(list_windows, contacts)
        return self.outcome

    def verify_credentials(self, contacts: ApiClient, account_ids: set[str]) -> None:
        """Accounts missing from the accounts file are left to fail with their lists."""
        for account_id in sorted(account_ids):
            if self.accounts.has(account_id):
                verify_account(contacts, self.accounts.get(account_id).contacts_account, account=account_id)

    def import_list(self, windows: list[ListWindow], contacts: ApiClient) -> None:
        try:
            streams = self.fetch(windows, contacts)
        except EXPECTED_ERRORS as error:
            self.report.log.error(f"{windows[0].list_key}: {error}")
            self._failed(windows, error)
            return
        try:
            for window in windows:
                try:
                    if window.partition_key in streams:
                        self.finish_stream(streams[window.partition_key])
                        continue
                    self.transform(window)
                    if Stage.EXPORTED in self.selection.stages or self.selection.checks:
                        self.export(window, contacts)
                except EXPECTED_ERRORS as error:
                    self.report.log.error(f"{window}: {error}")
                    self._failed([window], error)
        finally:
            for stream in streams.values():
                stream.exporter.close()

    def fetch(self, windows: list[ListWindow], contacts: ApiClient) -> dict[str, WindowStream]:
        """Sweeps the list once; when the run does all three steps, they stream together."""
        pending = [window for window in windows if self.selection.pending(Stage.SOURCE, window)]
        if not pending:
            return {}
        account = self.accounts.get(pending[0].account_id)
        if not account.allows(pending[0].list_id):
            raise ConfigError(f"list {pending[0].list_key} is not in account '{account.id}'s allow-list")
        everything = self.selection.everything(windows)
        open_letters = self.stores.dead_letters().open_members(pending[0].list_key) if everything else {}
        files = self.stores.windows()
        streams = [
            WindowStream(
                window,
                files,
                records=RecordsStage(files, self.stores.dead_letters(), window, self.run_id) if everything else None,
                exporter=self._exporter(window, contacts, open_letters) if everything else None,
                max_invalid_share=self.outcome.threshold,
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
                log=self.report.log,
            )
        metrics.timing("step.duration", time.monotonic() - started, account.id, step="fetch")
        for window in pending:
            self._report(Stage.SOURCE, window, fetched_metadata(stats[window.window_key]))
        return {stream.window.partition_key: stream for stream in streams if stream.exporter}

    def transform(self, window: ListWindow) -> None:
        if self.selection.pending(Stage.RECORDS, window):
            started = time.monotonic()
            stats = transform_window(self.stores.windows(), self.stores.dead_letters(), window, self.run_id)
            metrics.timing("step.duration", time.monotonic() - started, window.account_id, step="transform")
            self._transformed(window, stats)

    def export(self, window: ListWindow, contacts: ApiClient) -> None:
        counts, source = self._checked_counts(window)
        if self.selection.pending(Stage.EXPORTED, window):
            started = time.monotonic()
            open_letters = self.stores.dead_letters().open_members(window.list_key)
            exporter = self._exporter(window, contacts, open_letters)
            stats = export_window(exporter, self.stores.windows(), self.report.log)
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
        self.report.log.info(
            f"{window}: exported {stats.exported}, rejected {stats.rejected} in {stats.batches} batches"
        )
        self._exported(window, counts, source, stats)

    def _exporter(self, window: ListWindow, contacts: ApiClient, open_letters: dict[str, str]) -> Exporter:
        changes = ChangeDetection(
            self.stores.sent_records(),
            self.resend_after,
            datetime.now(timezone.utc),
            force_run_id=self.run_id if self.force_export else None,
        )
        return Exporter(
            contacts,
            self.accounts.get(window.account_id).contacts_account,
            self.stores.dead_letters(),
            window,
            files=self.stores.windows(),
            previously_dead={member for member, first in open_letters.items() if first <= window.window_key},
            run_id=self.run_id,
            batch_size=self.contacts.batch_size,
            parallelism=self.contacts.parallelism,
            changes=changes,
        )

    def _checked_counts(self, window: ListWindow, already_sent: int = 0) -> tuple[WindowCounts, dict]:
        """The window's counts, after the checks that run before export; raises if it is blocked."""
        files = self.stores.windows()
        source = files.manifest(Stage.SOURCE, window.list_key, window.window_key)
        records = files.manifest(Stage.RECORDS, window.list_key, window.window_key)
        counts = WindowCounts(source["fetched"], records["transformed"], records["invalid"], records["duplicates"])
        self.outcome.verdicts.judge_before_export(str(window), window.partition_key, counts, self.outcome.threshold,
                                                  already_sent)
        return counts, source

    def _transformed(self, window: ListWindow, stats: TransformStats) -> None:
        if stats.invalid:
            self.report.log.warning(f"{window}: {stats.invalid} members dead-lettered by validation")
        self._report(
            Stage.RECORDS,
            window,
            {"transformed": stats.transformed, "dead_lettered": stats.invalid, "duplicates": stats.duplicates},
        )

    def _exported(self, window: ListWindow, counts: WindowCounts, source: dict, stats: ExportStats) -> None:
        counts = replace(counts, exported=stats.exported, skipped=stats.skipped, rejected=stats.rejected)
        if not counts.reconciles():
            self.outcome.verdicts.unreconciled.append(window.partition_key)
        count_imported_window(window.account_id, counts)
        self.history.succeeded(window, self.run_id, counts)
        self._report(Stage.EXPORTED, window, exported_metadata(counts, source, stats))

    def _failed(self, windows: list[ListWindow], error: Exception) -> None:
        self.outcome.fail(windows, error)
        self.history.failed(windows, self.run_id, str(error))

    def _report(self, stage: Stage, window: ListWindow, metadata: dict[str, Any]) -> None:
        self.report.materialized(stage, window, {**metadata, **window.bounds()})


def fetched_metadata(fetched: FetchStats) -> dict[str, Any]:
    return {
        "fetched": fetched.fetched,
        "pages_fetched": fetched.pages,
        "repair_pages": fetched.repair_pages,
        "duration_s": round(fetched.duration_s, 3),
    }


def exported_metadata(counts: WindowCounts, source: dict, stats: ExportStats) -> dict[str, Any]:
    return {
        "fetched": counts.fetched,
        "pages_fetched": source["pages"],
        "transformed": counts.transformed,
        "dead_lettered": counts.dead_lettered,
        "exported": counts.exported,
        "skipped": counts.skipped,
        "rejected": counts.rejected,
        "batches": stats.batches,
        "fetch_duration_s": round(source["duration_s"], 3),
    }


def count_imported_window(account: str, counts: WindowCounts) -> None:
    metrics.count("windows.imported", 1, account)
    for name in ("fetched", "exported", "skipped", "rejected", "dead_lettered"):
        metrics.count(f"contacts.{name}", getattr(counts, name), account)
