from datetime import datetime, timedelta, timezone

import pytest

from importer_dagster.core.settings import ConfigError, start_date
from importer_dagster.core.windows import (
    FIRST_WINDOW_KEY,
    FIRST_WINDOW_START,
    account_of,
    decode_partition_key,
    horizon_start,
    partition_key,
    split_partition_key,
    window_key_at,
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


def test_keys_are_written_and_read_by_one_format():
    key = partition_key("acme.1a2d7ebf82", "2026-11-20-03:00")
    assert key == "acme.1a2d7ebf82|2026-11-20-03:00"
    assert split_partition_key(key) == ("acme.1a2d7ebf82", "2026-11-20-03:00")
    assert decode_partition_key(key).partition_key == key
    assert account_of(key) == account_of("acme.1a2d7ebf82") == "acme"


def test_an_opened_window_reaches_back_to_the_beginning_of_time():
    first = decode_partition_key(f"acme.x|{FIRST_WINDOW_KEY}").opened()
    assert first.start is None
    assert first.contains(utc(2001, 1, 1))
    assert not first.contains(first.end)


def test_the_horizon_is_day_aligned_and_never_before_the_start_date(monkeypatch):
    monkeypatch.setenv("IMPORTER_HORIZON_DAYS", "7")
    monkeypatch.setenv("IMPORTER_START_DATE", "2026-11-01")
    assert horizon_start(utc(2026, 11, 29, 9, 41)) == utc(2026, 11, 22)
    assert horizon_start(utc(2026, 11, 29, 23, 59)) == utc(2026, 11, 22), "the horizon moves once a day"
    assert horizon_start(utc(2026, 11, 5, 12)) == utc(2026, 11, 1)


def test_consecutive_windows_tile_time_without_gap_or_overlap():
    keys = [window_key_at(FIRST_WINDOW_START + timedelta(hours=hour)) for hour in range(24)]
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


def test_a_start_date_in_the_future_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("IMPORTER_START_DATE", "2999-01-01")
    with pytest.raises(ConfigError, match=r"^IMPORTER_START_DATE=2999-01-01 is in the future: no window would exist yet$"):
        start_date()
    monkeypatch.setenv("IMPORTER_START_DATE", "yesterday")
    with pytest.raises(ConfigError, match=r"is not a date of the form YYYY-MM-DD$"):
        start_date()
