"""Change detection over real HTTP: only what the Contacts API has not accepted yet is sent."""

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from datetime import timedelta

from importer_dagster.assets import FORCE_EXPORT_TAG
from importer_dagster.core.changes import SentRecords
from importer_dagster.core.settings import RESEND_AFTER_S
from importer_dagster.core.state import state_engine
from importer_dagster.core.windows import decode_partition_key

from .conftest import GROUP, ACME_LIST, NOW, Importer, window_key
from .test_assets import expected_ids, materialization_metadata

BIN = Path(sys.executable).parent
EARLIER = window_key(NOW - timedelta(hours=2))
LATER = window_key(NOW - timedelta(hours=1))


def partition(window: str) -> str:
    return f"acme.{ACME_LIST}|{window}"


def import_counts(contacts_sim) -> Counter:
    return Counter(row["external_id"].split(":", 1)[1] for row in contacts_sim.imports("acme-contacts"))


def sent_ids(contacts_sim, since: int) -> Counter:
    return Counter(row["external_id"].split(":", 1)[1] for row in contacts_sim.imports("acme-contacts")[since:])


def touch_into_later_window(mailchimp_sim, member_ids: list[str], **change) -> None:
    at = decode_partition_key(partition(LATER)).start + timedelta(minutes=10)
    mailchimp_sim.touch(ACME_LIST, member_ids=member_ids, at=at, **change)


def test_a_window_reimported_after_only_stats_changed_sends_nothing(importer: Importer, mailchimp_sim, contacts_sim):
    importer.materialize(partition(EARLIER))
    touched = sorted(expected_ids(mailchimp_sim, ACME_LIST, EARLIER))[:20]
    touch_into_later_window(mailchimp_sim, touched, stats_only=True)
    before = len(contacts_sim.imports("acme-contacts"))

    result = importer.materialize(partition(LATER))

    later = sent_ids(contacts_sim, before)
    assert later and not set(touched) & set(later), "contacts whose only change was stats must not be sent"
    assert set(later) == expected_ids(mailchimp_sim, ACME_LIST, LATER) - set(touched)
    metadata = materialization_metadata(result, "exported_batches")
    assert metadata["skipped"] == len(touched)
    assert metadata["fetched"] == metadata["exported"] + metadata["skipped"] + metadata["rejected"] + metadata["dead_lettered"]


def test_a_changed_name_or_status_is_sent(importer: Importer, mailchimp_sim, contacts_sim):
    importer.materialize(partition(EARLIER))
    members = sorted(expected_ids(mailchimp_sim, ACME_LIST, EARLIER))
    renamed, unsubscribed = members[:5], members[5:10]
    touch_into_later_window(mailchimp_sim, renamed, merge_fields={"FNAME": "Renamed"})
    touch_into_later_window(mailchimp_sim, unsubscribed, status="unsubscribed")

    importer.materialize(partition(LATER))

    counts = import_counts(contacts_sim)
    assert all(counts[member] == 2 for member in renamed + unsubscribed)


def test_an_expired_entry_is_sent_again_and_applied(importer: Importer, mailchimp_sim, contacts_sim, monkeypatch):
    monkeypatch.setenv(RESEND_AFTER_S.name, "1")
    importer.materialize(partition(EARLIER))
    expected = expected_ids(mailchimp_sim, ACME_LIST, EARLIER)
    time.sleep(1.2)  # the entries expire; not a timing assertion

    result = importer.materialize(partition(EARLIER))

    assert import_counts(contacts_sim) == Counter({member: 2 for member in expected})
    assert materialization_metadata(result, "exported_batches")["skipped"] == 0


def test_a_forced_run_sends_everything_again(importer: Importer, mailchimp_sim, contacts_sim):
    importer.materialize(partition(EARLIER))
    expected = expected_ids(mailchimp_sim, ACME_LIST, EARLIER)

    importer.materialize(partition(EARLIER), tags={FORCE_EXPORT_TAG: "true"})

    assert import_counts(contacts_sim) == Counter({member: 2 for member in expected})


def test_a_crash_between_the_accepted_post_and_the_store_update_costs_a_resend_not_a_contact(
    importer: Importer, mailchimp_sim, contacts_sim, monkeypatch
):
    remember = SentRecords.remember
    crashes = []

    def crash_once(self, *args, **kwargs):
        if not crashes:
            crashes.append(True)
            raise OSError("the process died after the API accepted the batch")
        return remember(self, *args, **kwargs)

    monkeypatch.setattr(SentRecords, "remember", crash_once)

    result = importer.materialize(partition(EARLIER))

    expected = expected_ids(mailchimp_sim, ACME_LIST, EARLIER)
    assert crashes and result.success, "the step's retry finishes the window"
    assert import_counts(contacts_sim) == Counter({member: 1 for member in expected})
    assert sum(request["replayed"] for request in contacts_sim.requests()) >= 1, "the batch went again"
    stored = importer.storage.sent_records().lookup(f"acme.{ACME_LIST}", sorted(expected))
    assert set(stored) == expected


def test_a_rejected_record_is_not_remembered_and_is_sent_on_the_next_run(importer: Importer, mailchimp_sim, contacts_sim):
    expected = expected_ids(mailchimp_sim, ACME_LIST, EARLIER)
    rejected = sorted(expected)[:3]
    contacts_sim.faults.reject_external_ids = [f"{ACME_LIST}:{member}" for member in rejected]
    importer.materialize(partition(EARLIER))
    assert not set(importer.storage.sent_records().lookup(f"acme.{ACME_LIST}", rejected))

    contacts_sim.faults.reject_external_ids = []
    result = importer.materialize(partition(EARLIER))

    counts = import_counts(contacts_sim)
    assert all(counts[member] == 1 for member in rejected)
    metadata = materialization_metadata(result, "exported_batches")
    assert metadata["exported"] == 3 and metadata["skipped"] == len(expected) - 3


def test_concurrent_runs_over_two_windows_of_one_list_keep_the_store_whole(
    mailchimp_sim, contacts_sim, importer_env, tmp_path
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    subprocess.run([str(BIN / "importer-dagster"), "discover"], env=env, check=True, capture_output=True, timeout=120)
    runs = [
        subprocess.Popen(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "importer_dagster.definitions", "--select", f"group:{GROUP.name}",
             "--partition", partition(window)],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for window in (EARLIER, LATER)
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr[-3000:]

    expected = expected_ids(mailchimp_sim, ACME_LIST, EARLIER) | expected_ids(mailchimp_sim, ACME_LIST, LATER)
    store = SentRecords(state_engine(f"sqlite:///{importer_env['IMPORTER_STATE_DIR']}/state.sqlite3"))
    assert set(store.lookup(f"acme.{ACME_LIST}", sorted(expected))) == expected
    assert import_counts(contacts_sim) == Counter({member: 1 for member in expected})
