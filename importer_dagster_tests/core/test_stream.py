"""A window's stream without Dagster, against the Contacts API simulator over real HTTP."""

from datetime import datetime, timedelta, timezone

from importer_dagster.core.contacts import contacts_client
from importer_dagster.core.dead_letters import DeadLetters
from importer_dagster.core.export import Exporter
from importer_dagster.core.files import WindowFiles
from importer_dagster.core.http import RetrySettings
from importer_dagster.core.ordering import CHUNK_ROWS
from importer_dagster.core.records import RecordsStage
from importer_dagster.core.state import state_engine
from importer_dagster.core.stream import WindowStream
from importer_dagster.core.windows import decode_partition_key
from importer_dagster_tests.fixtures import CONTACTS_KEY

WINDOW = decode_partition_key("acme.aaaaaaaaa1|2026-11-20-03:00")


def member(index: int, valid: bool = True) -> dict:
    changed = WINDOW.start + timedelta(seconds=index // 20)
    return {
        "id": f"{index:032x}",
        "email_address": f"person{index}@example.com" if valid else f"not-an-email-{index}",
        "status": "subscribed",
        "merge_fields": {"FNAME": "Ada", "LNAME": "Lovelace"},
        "tags": [],
        "language": "en",
        "vip": False,
        "last_changed": changed.isoformat(),
        "list_id": WINDOW.list_id,
    }


def stream_window(members: list[dict], tmp_path, contacts_sim, max_invalid_share: float) -> tuple[WindowStream, object]:
    files = WindowFiles(tmp_path / "windows")
    dead_letters = DeadLetters(state_engine(f"sqlite:///{tmp_path / 'state.sqlite3'}"))
    with contacts_client(contacts_sim.base_url, CONTACTS_KEY, "test-run", parallelism=4, retry=RetrySettings()) as client:
        exporter = Exporter(client, "acme-contacts", dead_letters, WINDOW, files=files, previously_dead=set(),
                            run_id="test-run", batch_size=1000, parallelism=4)
        stream = WindowStream(WINDOW, files, records=RecordsStage(files, dead_letters, WINDOW, "test-run"),
                              exporter=exporter, max_invalid_share=max_invalid_share)
        for item in sorted(members, key=lambda m: (m["last_changed"], m["id"])):
            changed = datetime.fromisoformat(item["last_changed"]).astimezone(timezone.utc)
            stream.buffer.add((changed, item["id"], item))
        stream.complete()
        stream.source.commit({"fetched": stream.buffer.count})
        stream.records.commit()
        return stream, stream.finish_export()


def test_a_window_halted_by_an_invalid_first_chunk_is_sent_whole_once_its_share_is_known(tmp_path, contacts_sim):
    members = [member(i, valid=i % 2 == 0) for i in range(CHUNK_ROWS)] + [
        member(i) for i in range(CHUNK_ROWS, 5 * CHUNK_ROWS)
    ]
    early_invalid = [m for m in members if "@" not in m["email_address"]]

    stream, stats = stream_window(members, tmp_path, contacts_sim, max_invalid_share=0.2)

    assert stream.export_halted, "the first chunk is half invalid: streaming must stop there"
    assert stats.exported == len(members) - len(early_invalid)
    imported = [row["external_id"] for row in contacts_sim.imports("acme-contacts")]
    assert len(imported) == len(set(imported)) == stats.exported
    assert stream.records.stats.invalid == len(early_invalid)


def test_a_window_within_the_threshold_streams_every_batch_before_the_files_are_committed(tmp_path, contacts_sim):
    members = [member(i) for i in range(3 * CHUNK_ROWS + 10)]

    stream, stats = stream_window(members, tmp_path, contacts_sim, max_invalid_share=0.2)

    assert not stream.export_halted and not stream.export_error, stream.export_error
    assert stats.exported == len(members) and stats.batches == 31
    assert len(contacts_sim.imports("acme-contacts")) == len(members)
