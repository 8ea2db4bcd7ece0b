from datetime import datetime, timedelta, timezone

import dagster as dg

from importer_dagster.core import settings
from importer_dagster.core.windows import FIRST_WINDOW_KEY, FIRST_WINDOW_START, decode_partition_key
from importer_dagster.partitions import (
    GROUP_CAPACITY,
    GROUPS,
    MAX_PARTITIONS_PER_ASSET,
    ListGroup,
    assign_groups,
    windows_partitions,
)


def test_multi_partition_keys_decode_like_their_string():
    key = dg.MultiPartitionKey({"list": "acme.1a2d7ebf82", "window": "2026-11-20-03:00"})
    assert str(key) == "acme.1a2d7ebf82|2026-11-20-03:00"
    assert decode_partition_key(key) == decode_partition_key(str(key))


def test_dagsters_windows_tile_time_as_the_window_model_decodes_them():
    keys = windows_partitions.get_partition_keys(current_time=FIRST_WINDOW_START + timedelta(days=1))
    assert keys[0] == FIRST_WINDOW_KEY and len(keys) == 24
    windows = [decode_partition_key(f"a.l|{key}") for key in keys]
    for earlier, later in zip(windows, windows[1:]):
        assert earlier.end == later.start


def test_a_group_at_capacity_stays_within_dagsters_partition_ceiling():
    hours_at_most = (settings.HORIZON_DAYS.get() + 1) * 24
    assert GROUP_CAPACITY * hours_at_most <= MAX_PARTITIONS_PER_ASSET < (GROUP_CAPACITY + 1) * hours_at_most
    today = windows_partitions.get_partition_keys(current_time=datetime.now(timezone.utc))
    assert len(today) <= hours_at_most and today[0] == FIRST_WINDOW_KEY


def test_the_partition_key_format_is_list_then_window():
    assert [dimension.name for dimension in GROUPS[0].partitions.partitions_defs] == ["list", "window"]


def test_new_lists_fill_the_emptiest_group_and_are_refused_when_every_group_is_full():
    groups = [ListGroup(0), ListGroup(1)]
    registered = {"a.1": groups[0], "a.2": groups[0], "b.1": groups[1]}

    assigned, unplaced = assign_groups(["c.1", "c.2", "c.3", "c.4"], registered, groups, capacity=3)

    assert {group.name: keys for group, keys in assigned.items()} == {"lists_01": ["c.1", "c.3"], "lists_00": ["c.2"]}
    assert unplaced == ["c.4"]
