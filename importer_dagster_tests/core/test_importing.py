"""An import run with no Dagster at all: the core's protocols, the simulators, real HTTP."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from importer_dagster.core.accounts import Account
from importer_dagster.core.changes import SentRecords
from importer_dagster.core.contacts import contacts_client
from importer_dagster.core.dead_letters import DeadLetters
from importer_dagster.core.files import WindowFiles
from importer_dagster.core.history import ImportHistory
from importer_dagster.core.http import ApiClient, RetrySettings
from importer_dagster.core.importing import ImportRun, Selection
from importer_dagster.core.mailchimp import mailchimp_client
from importer_dagster.core.slots import FileSlots
from importer_dagster.core.stages import Stage
from importer_dagster.core.state import state_engine
from importer_dagster.core.quality import WindowCounts
from importer_dagster.core.windows import FIRST_WINDOW_START, ListWindow, decode_partition_key
from importer_dagster.simulators.mailchimp import MailchimpSimulator
from importer_dagster_tests.fixtures import ACME_LIST, CONTACTS_KEY, build_world, last_closed_window, window_key

FAST = RetrySettings(backoff_s=0.01)


@dataclass
class Mailchimp:
    slots_dir: Path
    page_size: int = 1000
    max_connections: int = 10

    def client(self, account: Account, correlation_id: str) -> AbstractContextManager[ApiClient]:
        return mailchimp_client(
            account, correlation_id, base_url=None, max_connections=self.max_connections, retry=FAST,
            slots=FileSlots(self.slots_dir, account.id, self.max_connections),
        )


@dataclass
class Contacts:
    base_url: str
    batch_size: int = 1000
    parallelism: int = 4

    def client(self, correlation_id: str) -> AbstractContextManager[ApiClient]:
        return contacts_client(self.base_url, CONTACTS_KEY, correlation_id, parallelism=self.parallelism, retry=FAST)


class Stores:
    def __init__(self, root: Path):
        self.root = root
        self.engine = state_engine(f"sqlite:///{root / 'state.sqlite3'}")

    def windows(self) -> WindowFiles:
        return WindowFiles(self.root / "windows")

    def dead_letters(self) -> DeadLetters:
        return DeadLetters(self.engine)

    def sent_records(self) -> SentRecords:
        return SentRecords(self.engine)

    def history(self) -> ImportHistory:
        return ImportHistory(self.engine)


@dataclass
class Recorder:
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("test_importing"))
    materializations: list[tuple[Stage, str, dict[str, Any]]] = field(default_factory=list)

    def materialized(self, stage: Stage, window: ListWindow, metadata: dict[str, Any]) -> None:
        self.materializations.append((stage, window.partition_key, metadata))


@pytest.fixture
def run(importer_env, contacts_sim, tmp_path):
    def run(keys: list[str], selection: Selection = Selection(frozenset(Stage))) -> tuple[Any, Recorder]:
        recorder = Recorder()
        outcome = ImportRun(
            run_id="core-test-run",
            selection=selection,
            mailchimp=Mailchimp(tmp_path / "slots"),
            contacts=Contacts(contacts_sim.base_url),
            stores=Stores(tmp_path),
            report=recorder,
        ).execute([decode_partition_key(key) for key in keys])
        return outcome, recorder

    return run


def changed_in(mailchimp_sim, window) -> set[str]:
    return {member for member, changed in mailchimp_sim.members_truth(ACME_LIST).items() if window.contains(changed)}


@pytest.fixture
def early_world(monkeypatch):
    """Changes from a day before the horizon's first window to two hours after it."""
    with MailchimpSimulator(build_world(now=FIRST_WINDOW_START + timedelta(hours=2, minutes=30), history_hours=30)) as sim:
        monkeypatch.setenv("MAILCHIMP_BASE_URL", sim.base_url)
        yield sim


def test_a_lists_first_import_is_its_full_sync_and_the_next_an_increment(run, early_world, contacts_sim):
    first, second = (f"acme.{ACME_LIST}|{window_key(FIRST_WINDOW_START + timedelta(hours=hours))}" for hours in (0, 1))

    first_outcome, full = run([first])
    outcome, recorder = run([second])

    assert first_outcome.failures == {} and outcome.failures == {}
    full_sync = changed_in(early_world, decode_partition_key(first).opened())
    assert full.materializations[-1][2]["fetched"] == len(full_sync) > len(changed_in(early_world, decode_partition_key(first)))
    assert full.materializations[-1][2]["window_start"] == "(open: full sync)"
    assert [(stage, partition) for stage, partition, _ in recorder.materializations] == [
        (Stage.SOURCE, second), (Stage.RECORDS, second), (Stage.EXPORTED, second),
    ]
    exported = recorder.materializations[-1][2]
    window = decode_partition_key(second)
    assert exported["fetched"] == exported["exported"] == len(changed_in(early_world, window)) > 0
    assert exported["window_start"] == window.start.isoformat()
    imported = [row["external_id"].split(":", 1)[1] for row in contacts_sim.imports("acme-contacts")]
    assert sorted(imported) == sorted(full_sync | changed_in(early_world, window))


def test_only_the_horizons_first_window_opens_and_only_with_nothing_imported_before_it(run, early_world, tmp_path):
    first = decode_partition_key(f"acme.{ACME_LIST}|{window_key(FIRST_WINDOW_START)}")
    later = f"acme.{ACME_LIST}|{window_key(FIRST_WINDOW_START + timedelta(hours=1))}"
    hour_before = decode_partition_key(f"acme.{ACME_LIST}|{window_key(FIRST_WINDOW_START - timedelta(hours=1))}")
    history = ImportHistory(state_engine(f"sqlite:///{tmp_path / 'state.sqlite3'}"))

    _, mid_horizon = run([later])
    history.succeeded(hour_before, "earlier", WindowCounts(0, 0, 0, 0))
    _, continued = run([first.partition_key])

    assert mid_horizon.materializations[-1][2]["window_start"] == (FIRST_WINDOW_START + timedelta(hours=1)).isoformat()
    assert continued.materializations[-1][2]["window_start"] == first.start.isoformat()


def test_every_outcome_is_recorded_in_the_import_history(run, tmp_path):
    good, missing = f"acme.{ACME_LIST}|{last_closed_window()}", f"acme.ccccccccc9|{last_closed_window()}"

    run([missing, good])

    records = {(r.list_key, r.status) for r in ImportHistory(state_engine(f"sqlite:///{tmp_path / 'state.sqlite3'}")).records()}
    assert records == {(f"acme.{ACME_LIST}", "succeeded"), ("acme.ccccccccc9", "failed")}


def test_what_an_earlier_attempt_finished_is_not_done_again(run, contacts_sim):
    key = f"acme.{ACME_LIST}|{last_closed_window()}"
    run([key])
    requests = len(contacts_sim.requests())
    done = frozenset((stage, key) for stage in Stage)

    outcome, recorder = run([key], Selection(frozenset(Stage), done=done))

    assert outcome.failures == {} and recorder.materializations == []
    assert len(contacts_sim.requests()) == requests, "nothing is posted again"


def test_a_failing_list_is_recorded_and_the_others_still_import(run, contacts_sim):
    good, missing = f"acme.{ACME_LIST}|{last_closed_window()}", f"acme.ccccccccc9|{last_closed_window()}"

    outcome, recorder = run([missing, good])

    assert list(outcome.failures) == [missing] and "404" in outcome.failures[missing]
    assert not outcome.retryable, "a 404 cannot pass on a retry"
    assert {partition for _, partition, _ in recorder.materializations} == {good}
