"""Which windows failed, read from Dagster's own partition-status cache (what the UI shows)."""

import dagster as dg
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from importer_dagster.partitions import list_windows_partitions

EXPORTED_KEY = dg.AssetKey("exported_batches")


def failed_partitions(instance: dg.DagsterInstance, asset_key: dg.AssetKey = EXPORTED_KEY) -> list[str]:
    """The keys the UI paints red, without enumerating every partition of the asset.

    `instance.get_status_by_partition` needs the full key list (720,000 keys at scale); the cached
    subset it reads underneath is already the answer.
    """
    with partition_loading_context(dynamic_partitions_store=instance):
        cached = get_and_update_asset_status_cache_value(instance, asset_key, list_windows_partitions)
        if cached is None:
            return []
        failed = cached.deserialize_failed_partition_subsets(list_windows_partitions)
        return sorted(str(key) for key in failed.get_partition_keys())
