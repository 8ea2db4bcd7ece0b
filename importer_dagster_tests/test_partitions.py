from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from importer_dagster.accounts import ConfigError
from importer_dagster.partitions import (
    FIRST_WINDOW_KEY,
    decode_partition_key,
    list_windows_partitions,
    windows_partitions,
)


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def test_a_key_string_decodes_to_account_list_and_half_open_window():
    window = decode_partition_key("acme.1a2d7ebf82|2026-11-20-03:00")
    assert (window.account_id, window.list_id, window.window_key) == ("acme", "1a2d7ebf82", "2026-11-20-03:00")
    assert (window.start, window.end) == (utc(2026, 11, 20, 3), utc(2026, 11, 20, 4))
    assert window.contains(utc(2026, 11, 20, 3, 0, 0))
    assert window.contains(utc(2026, 11, 20, 3, 59, 59))
    assert not window.contains(utc(2026, 11, 20, 4, 0, 0))


def test_multi_partition_keys_decode_like_their_string():
    key = dg.MultiPartitionKey({"list": "acme.1a2d7ebf82", "window": "2026-11-20-03:00"})
    assert str(key) == "acme.1a2d7ebf82|2026-11-20-03:00"
    assert decode_partition_key(key) == decode_partition_key(str(key))


def test_the_first_window_is_open_at_its_start():
    first = decode_partition_key(f"acme.x|{FIRST_WINDOW_KEY}")
    assert first.start is None
    assert first.contains(utc(2001, 1, 1))
    assert not first.contains(first.end)


def test_consecutive_windows_tile_time_without_gap_or_overlap():
    keys = windows_partitions.get_partition_keys(current_time=utc(2026, 11, 2, 0))
    windows = [decode_partition_key(f"a.l|{key}") for key in keys]
    for earlier, later in zip(windows, windows[1:]):
        assert earlier.end == later.start
    moment = windows[0].end - timedelta(seconds=1)
    assert sum(window.contains(moment) for window in windows) == 1
    assert sum(window.contains(windows[5].start) for window in windows) == 1


@pytest.mark.parametrize(
    "bad",
    ["acme-1a2d7ebf82|2026-11-20-03:00", "acme.1a2d|2026-11-20-03:17", "acme.1a2d|2020-01-01-00:00", "nonsense"],
)
def test_malformed_keys_fail_with_a_one_line_error(bad):
    with pytest.raises(ConfigError) as caught:
        decode_partition_key(bad)
    assert "\n" not in str(caught.value)


def test_the_partition_key_format_is_list_then_window():
    assert [dimension.name for dimension in list_windows_partitions.partitions_defs] == ["list", "window"]


def test_a_start_date_in_the_future_is_refused_in_one_line(monkeypatch):
    from importer_dagster.partitions import start_date

    monkeypatch.setenv("IMPORTER_START_DATE", "2999-01-01")
    with pytest.raises(ConfigError, match=r"^IMPORTER_START_DATE=2999-01-01 is in the future: no window would exist yet$"):
        start_date()
    monkeypatch.setenv("IMPORTER_START_DATE", "yesterday")
    with pytest.raises(ConfigError, match=r"is not a date of the form YYYY-MM-DD$"):
        start_date()
