"""The three assets of an import, for each list group, materialized by one op, window by window.

`mailchimp_contacts` (a window of Mailchimp members), `contact_records` (mapped and validated) and
`exported_batches` (imported into the Contacts API) are separate assets with their own partition
status, but one op produces them. That is what lets a single run cover many lists (the hourly tick)
or a list's whole history (one Mailchimp sweep) and still report each window on its own: a window
that fails stays failed while the others in the same run are materialized, and a retry redoes only
what is missing. The op can be subset, so exporting again from stored records needs no refetch.

The work itself is `core.importing.ImportRun`; this module decodes partitions, records outcomes
as Dagster events, and turns failures into what Dagster should do with them. Each list group
(`partitions.ListGroup`) gets the same op over its own assets and partitions.
"""

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import dagster as dg

from importer_dagster.asset_keys import stage_of
from importer_dagster.checks import freshness, freshness_check, window_check_results, window_check_specs
from importer_dagster.core.http import HttpError
from importer_dagster.core.importing import ImportRun, RunOutcome, Selection
from importer_dagster.core import settings
from importer_dagster.core.settings import ConfigError
from importer_dagster.core.stages import Stage
from importer_dagster.core.files import WindowFiles
from importer_dagster.core.windows import ListWindow, decode_partition_key, horizon_start
from importer_dagster.io_manager import STAGE_SCHEMAS, WINDOW_FILES_IO_MANAGER, table_schema
from importer_dagster.partitions import GROUPS, ListGroup, requested_range
from importer_dagster.resources import ContactsApiResource, ImporterStorage, MailchimpResource

FORCE_EXPORT_TAG = "importer/force-export"
"""`true` sends every record again, changed or not: from a UI backfill's tags or `--tags` on the CLI."""
RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
DESCRIPTIONS = {
    Stage.SOURCE: ("Members of one Mailchimp list whose last_changed falls in the window, as Parquet parts.",
                   {"mailchimp", "parquet"}),
    Stage.RECORDS: ("Contacts API records mapped and validated from the window; invalid members become dead letters.",
                    {"parquet", "pydantic"}),
    Stage.EXPORTED: ("The window's records imported into the Contacts API in idempotent batches, one row per batch.",
                     {"api", "parquet"}),
}


def import_specs(group: ListGroup) -> list[dg.AssetSpec]:
    keys = group.asset_keys
    upstream = {Stage.SOURCE: [], Stage.RECORDS: [keys[Stage.SOURCE]], Stage.EXPORTED: [keys[Stage.RECORDS]]}
    return [
        dg.AssetSpec(
            keys[stage], deps=upstream[stage], description=DESCRIPTIONS[stage][0], kinds=DESCRIPTIONS[stage][1],
            group_name=group.name, skippable=True,
        ).with_io_manager_key(WINDOW_FILES_IO_MANAGER)
        for stage in Stage
    ]


ROW_COUNTS = {Stage.SOURCE: "fetched", Stage.RECORDS: "transformed", Stage.EXPORTED: "batches"}
"""Which of a stage's counts is the number of rows in its window files."""


class EventLogReporter:
    """Each window's outcome becomes a materialization of its partition the moment it is known.

    Its metadata is counts, the files' schema and where they are: never a preview of rows, which
    hold people's email addresses.
    """

    def __init__(self, context: dg.AssetExecutionContext, group: ListGroup, files: WindowFiles):
        self.context = context
        self.group = group
        self.files = files
        self.log = context.log

    def materialized(self, stage: Stage, window: ListWindow, metadata: dict[str, Any]) -> None:
        self.context.log_event(
            dg.AssetMaterialization(
                asset_key=self.group.asset_keys[stage],
                partition=window.partition_key,
                metadata={
                    **metadata,
                    "dagster/row_count": metadata[ROW_COUNTS[stage]],
                    "dagster/column_schema": table_schema(STAGE_SCHEMAS[stage]),
                    "path": dg.MetadataValue.path(str(self.files.path(stage, window.list_key, window.window_key))),
                },
            )
        )


def _selection(context: dg.AssetExecutionContext) -> Selection:
    """What this attempt still has to do: a retry of the step must not redo what an earlier one finished."""
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1_000_000
    ).records
    done = {
        (stage_of(entry.asset_materialization.asset_key), entry.asset_materialization.partition)
        for entry in (record.event_log_entry for record in records)
    }
    return Selection(
        stages=frozenset(stage_of(key) for key in context.selected_asset_keys),
        done=frozenset(done),
        checks=bool(context.selected_asset_check_keys),
    )


def _windows(context: dg.AssetExecutionContext, group: ListGroup) -> list[ListWindow]:
    """The run's windows, their keys checked before Dagster expands them.

    A malformed key, a list nobody registered in this group, a window that has not closed or has
    left the horizon can never succeed here, and Dagster's own parse of such a key fails with an
    error its RetryPolicy would retry.
    """
    now = datetime.now(timezone.utc)
    for key in dict.fromkeys(requested_range(context.run.tags)):
        window = decode_partition_key(key)
        if not context.instance.has_dynamic_partition(group.lists_partitions.name, window.list_key):
            raise ConfigError(
                f"list {window.list_key} is not registered in {group.name}: `importer-dagster discover` registers "
                "an account's lists"
            )
        if window.end > now:
            raise ConfigError(f"window {window.window_key} has not closed yet: it ends at {window.end:%Y-%m-%d %H:%M} UTC")
        if window.start < horizon_start(now):
            raise ConfigError(
                f"window {window.window_key} is older than the {settings.HORIZON_DAYS.get()}-day horizon: "
                "`importer-dagster resync` imports it"
            )
    return [decode_partition_key(key) for key in context.partition_keys]


def as_failure(error: ConfigError | HttpError) -> dg.Failure:
    """What fails a whole run: one line, retried by the RetryPolicy only if a retry could help."""
    return dg.Failure(description=str(error), allow_retries=getattr(error, "retryable", False))


def _raise_for_failures(outcome: RunOutcome, total: int) -> None:
    failures = outcome.failures
    if not failures:
        return
    shown = "; ".join(f"{key}: {reason}" for key, reason in list(failures.items())[:20])
    more = f" (and {len(failures) - 20} more)" if len(failures) > 20 else ""
    raise dg.Failure(
        description=f"{len(failures)} of {total} windows failed: {shown}{more}",
        metadata={"failed_partitions": dg.MetadataValue.json(sorted(failures))},
        allow_retries=outcome.retryable,
    )


def import_assets_for(group: ListGroup) -> dg.AssetsDefinition:
    fresh = freshness_check(group)

    @dg.multi_asset(
        name=f"{group.name}_import",
        specs=import_specs(group),
        check_specs=[*window_check_specs(group), fresh],
        partitions_def=group.partitions,
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
        try:
            windows = _windows(context, group)
            outcome = ImportRun(
                run_id=context.run.run_id,
                selection=_selection(context),
                mailchimp=mailchimp,
                contacts=contacts_api,
                stores=storage,
                report=EventLogReporter(context, group, storage.windows()),
                force_export=context.run.tags.get(FORCE_EXPORT_TAG) == "true",
            ).execute(windows)
        except (ConfigError, HttpError) as error:
            raise as_failure(error) from None
        selected_checks = context.selected_asset_check_keys if outcome.verdicts.windows else set()
        for result in window_check_results(group, outcome):
            if dg.AssetCheckKey(result.asset_key, result.check_name) in selected_checks:
                yield result
        if fresh.key in context.selected_asset_check_keys:
            active = active_lists(context.instance, group, storage)
            yield freshness(group, active, storage.history(), datetime.now(timezone.utc)).result()
        group.refresh_status_cache(context.instance)
        _raise_for_failures(outcome, len(windows))

    return import_contacts


def active_lists(instance: dg.DagsterInstance, group: ListGroup, storage: ImporterStorage) -> list[str]:
    retired = storage.retired_lists().keys()
    return [key for key in instance.get_dynamic_partitions(group.lists_partitions.name) if key not in retired]


import_assets = [import_assets_for(group) for group in GROUPS]
