"""The partition space: per list group, one key per (Mailchimp list, hourly window of `last_changed`).

Dagster recommends at most 100,000 partitions per asset. A list × hour space over every list and
every hour since the start grows without bound, so it is cut twice (docs/scaling.md): the hours
are a rolling horizon (`IMPORTER_HORIZON_DAYS`), and the lists are spread over
`IMPORTER_LIST_GROUPS` groups, each with its own assets, so that no asset holds more than
`GROUP_CAPACITY` lists. The key format and the window arithmetic live in `core.windows`.
Dimensions are ordered by name, so a key prints as `<list key>|<window key>`.
"""

import dagster as dg

from importer_dagster.asset_keys import asset_key, group_name
from importer_dagster.core import settings
from importer_dagster.core.stages import Stage
from importer_dagster.core.windows import FIRST_WINDOW_KEY

MAX_PARTITIONS_PER_ASSET = 100_000
"""Dagster's recommended ceiling; the UI's partition views slow down past it."""

windows_partitions = dg.HourlyPartitionsDefinition(start_date=FIRST_WINDOW_KEY, timezone="UTC")
history_days = dg.DailyPartitionsDefinition(start_date=settings.START_DATE.get().isoformat(), timezone="UTC")
GROUP_CAPACITY = MAX_PARTITIONS_PER_ASSET // ((settings.HORIZON_DAYS.get() + 1) * 24)
"""Lists one group holds: the horizon is at most HORIZON_DAYS + 1 days long (today's hours included)."""


class ListGroup:
    """A share of the lists with assets of its own: `lists_NN/mailchimp_contacts` and so on."""

    def __init__(self, number: int):
        self.number = number
        self.name = group_name(number)
        self.lists_partitions = dg.DynamicPartitionsDefinition(name=f"mailchimp_{self.name}")
        self.partitions = dg.MultiPartitionsDefinition({"list": self.lists_partitions, "window": windows_partitions})
        self.asset_keys = {stage: asset_key(number, stage) for stage in Stage}
        self.job_name = f"import_{self.name}"

    def refresh_status_cache(self, instance: dg.DagsterInstance) -> None:
        """Brings Dagster's partition-status cache of the group's assets up to date, off the UI's path.

        Dagster rebuilds an asset's cache from every event it holds whenever the asset's partitions
        change: when a list is registered in the group, and when the horizon moves at midnight. At
        a full group that takes 3 to 6 seconds an asset, which the first view of its partitions in
        the UI would otherwise wait for. Up to date, it is an incremental read of a tenth of a second.
        """
        for key in self.asset_keys.values():
            instance.get_status_by_partition(key, [], self.partitions)


GROUPS = [ListGroup(number) for number in range(settings.LIST_GROUPS.get())]


def registered_lists(instance: dg.DagsterInstance) -> dict[str, ListGroup]:
    """Every registered list and the group that holds it: the groups' partitions are the record."""
    return {key: group for group in GROUPS for key in instance.get_dynamic_partitions(group.lists_partitions.name)}


def assign_groups(
    new_keys: list[str], registered: dict[str, ListGroup], groups: list[ListGroup] = GROUPS,
    capacity: int = GROUP_CAPACITY,
) -> tuple[dict[ListGroup, list[str]], list[str]]:
    """Each new list to the group with the fewest lists, so groups fill evenly and none passes its
    capacity. Returns the lists per group, and the lists no group has room for."""
    sizes = {group: 0 for group in groups}
    for group in registered.values():
        sizes[group] += 1
    assigned: dict[ListGroup, list[str]] = {}
    unplaced = []
    for key in new_keys:
        group = min(groups, key=lambda candidate: sizes[candidate])
        if sizes[group] >= capacity:
            unplaced.append(key)
            continue
        assigned.setdefault(group, []).append(key)
        sizes[group] += 1
    return assigned, unplaced


PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def range_tags(first: str, last: str) -> dict[str, str]:
    """Tags that make one run cover the partition range first..last (a rectangle of lists × windows)."""
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def requested_range(tags: dict[str, str]) -> tuple[str, str]:
    """The run's partition keys as they were typed, before Dagster parses them."""
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG], tags[PARTITION_TAG]
    return tags[RANGE_START_TAG], tags[RANGE_END_TAG]
