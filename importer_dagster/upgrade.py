"""From the layout before list groups, without losing sight of what was imported.

That layout had one set of assets (`exported_batches`, unprefixed) over every list, registered in
the `mailchimp_lists` partitions. Its lists join the list groups, and every window it imported or
failed is written into the import history, from the materializations Dagster still holds. Those
events stay where they are, under the old asset keys, in the UI's asset catalog.
"""

from dataclasses import dataclass
from datetime import datetime, timezone

import dagster as dg

from importer_dagster.core.history import COUNTS, FAILED, SUCCEEDED, WindowRecord
from importer_dagster.core.settings import ConfigError
from importer_dagster.core.windows import split_partition_key
from importer_dagster.partitions import GROUP_CAPACITY, assign_groups, registered_lists
from importer_dagster.resources import ImporterStorage

LEGACY_LISTS = "mailchimp_lists"
LEGACY_EXPORTED = dg.AssetKey("exported_batches")


@dataclass(frozen=True)
class UpgradeReport:
    lists: int
    windows: int
    failed: int


def _events(fetch, key: dg.AssetKey):
    cursor = None
    while True:
        result = fetch(key, limit=10_000, cursor=cursor, ascending=True)
        yield from result.records
        if not result.has_more:
            return
        cursor = result.cursor


def upgrade(instance: dg.DagsterInstance, storage: ImporterStorage) -> UpgradeReport:
    legacy = instance.get_dynamic_partitions(LEGACY_LISTS)
    registered = registered_lists(instance)
    assigned, unplaced = assign_groups([key for key in legacy if key not in registered], registered)
    if unplaced:
        raise ConfigError(f"{len(unplaced)} list(s) do not fit: every list group holds {GROUP_CAPACITY} lists; "
                          "raise IMPORTER_LIST_GROUPS")
    for group, keys in assigned.items():
        instance.add_dynamic_partitions(group.lists_partitions.name, keys)
    outcomes: dict[tuple[str, str], WindowRecord] = {}
    for record in [*_events(instance.fetch_failed_materializations, LEGACY_EXPORTED),
                   *_events(instance.fetch_materializations, LEGACY_EXPORTED)]:
        entry = record.event_log_entry
        window_record = _window_record(entry)
        key = (window_record.list_key, window_record.window)
        if key not in outcomes or outcomes[key].updated_at <= window_record.updated_at:
            outcomes[key] = window_record
    storage.history().restore(list(outcomes.values()))
    return UpgradeReport(
        lists=sum(len(keys) for keys in assigned.values()),
        windows=len(outcomes),
        failed=sum(1 for record in outcomes.values() if record.status == FAILED),
    )


def _window_record(entry) -> WindowRecord:
    event = entry.dagster_event
    materialization = entry.asset_materialization
    partition = materialization.partition if materialization else event.event_specific_data.partition
    list_key, window = split_partition_key(partition)
    metadata = {name: value.value for name, value in materialization.metadata.items()} if materialization else {}
    succeeded = materialization is not None and "fetched" in metadata
    return WindowRecord(
        list_key=list_key, window=window, status=SUCCEEDED if succeeded else FAILED, run_id=entry.run_id, attempts=1,
        **{name: metadata.get(name) for name in COUNTS},
        reason=None if succeeded else "failed before the upgrade; see the run",
        updated_at=datetime.fromtimestamp(entry.timestamp, timezone.utc),
    )
