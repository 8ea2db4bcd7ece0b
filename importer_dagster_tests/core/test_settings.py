"""Every setting read in one place: a value outside its range is one line naming it, never a crash."""

from datetime import timedelta

import pytest

from importer_dagster.core import settings
from importer_dagster.core.settings import ConfigError


@pytest.mark.parametrize(
    ("setting", "raw", "accepts"),
    [
        (settings.MAX_INVALID_SHARE, "abc", "must be a share between 0 and 1 (0.2 means 20%)"),
        (settings.MAX_INVALID_SHARE, "5", "must be a share between 0 and 1 (0.2 means 20%)"),
        (settings.MAX_INVALID_SHARE, "-0.1", "must be a share between 0 and 1 (0.2 means 20%)"),
        (settings.RESEND_AFTER_S, "0", "must be a positive number of seconds"),
        (settings.RESEND_AFTER_S, "a week", "must be a positive number of seconds"),
        (settings.RETRY_COOLDOWN_S, "-1", "must be a number of seconds, 0 or more"),
        (settings.MAX_AUTO_RETRIES, "2.5", "must be a whole number, 0 or more"),
        (settings.STATSD_PORT, "70000", "must be a port number between 1 and 65535"),
        (settings.START_DATE, "2026-13-01", "is not a date of the form YYYY-MM-DD"),
    ],
)
def test_a_value_outside_its_range_names_the_variable_and_what_it_accepts(monkeypatch, setting, raw, accepts):
    monkeypatch.setenv(setting.name, raw)
    with pytest.raises(ConfigError) as caught:
        setting.get()
    assert str(caught.value) == f"{setting.name}={raw!r} {accepts}"


def test_unset_or_blank_settings_take_their_defaults(monkeypatch):
    monkeypatch.setenv(settings.MAX_INVALID_SHARE.name, "  ")
    monkeypatch.delenv(settings.RESEND_AFTER_S.name, raising=False)
    assert settings.MAX_INVALID_SHARE.get() == 0.2
    assert settings.resend_after() == timedelta(days=7)


def test_valid_values_are_parsed_to_their_type(monkeypatch):
    monkeypatch.setenv(settings.MAX_INVALID_SHARE.name, "0.5")
    monkeypatch.setenv(settings.RETRY_COOLDOWN_S.name, "0")
    monkeypatch.setenv(settings.MAX_AUTO_RETRIES.name, "4")
    assert (settings.MAX_INVALID_SHARE.get(), settings.RETRY_COOLDOWN_S.get(), settings.MAX_AUTO_RETRIES.get()) == (
        0.5, 0.0, 4,
    )


def test_the_state_lives_beside_the_dagster_instance_unless_set(monkeypatch, tmp_path):
    monkeypatch.delenv(settings.STATE_DIR.name, raising=False)
    monkeypatch.setenv(settings.DAGSTER_HOME.name, str(tmp_path))
    assert settings.state_dir() == tmp_path / "importer"
    assert settings.database_url(settings.state_dir()) == f"sqlite:///{tmp_path / 'importer' / 'state.sqlite3'}"
    monkeypatch.setenv(settings.STATE_DIR.name, str(tmp_path / "elsewhere"))
    assert settings.state_dir() == tmp_path / "elsewhere"
