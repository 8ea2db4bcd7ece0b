"""Window files as people read them: pandas straight from a folder, whatever the import is doing,
on local disk and on a shared object store alike."""

import pandas as pd
import pyarrow as pa
import pytest

from importer_dagster.core.files import WindowFiles, WindowNotMaterialized
from importer_dagster.core.stages import Stage

SCHEMA = pa.schema([("external_id", pa.string()), ("status", pa.string())])
LIST = "acme.1a2d7ebf82"


@pytest.fixture(params=["local", "s3"])
def base(request, tmp_path) -> str:
    """Where the window files live: a folder on this host, or a bucket of the object store."""
    if request.param == "local":
        return str(tmp_path / "windows")
    return f"{request.getfixturevalue('s3_url')}/windows"


def write(files: WindowFiles, window: str, chunks: list[list[tuple[str, str]]]):
    writer = files.writer(Stage.RECORDS, LIST, window, SCHEMA)
    for chunk in chunks:
        writer.write(pa.table([pa.array([c[0] for c in chunk]), pa.array([c[1] for c in chunk])], schema=SCHEMA))
    return writer


def test_pandas_reads_a_window_folder_and_a_list_folder(base):
    files = WindowFiles(base)
    write(files, "2026-11-28-09:00", [[("l:1", "subscribed")], [("l:2", "cleaned")]]).commit({"transformed": 2})
    write(files, "2026-11-28-10:00", [[("l:3", "subscribed")]]).commit({"transformed": 1})
    in_progress = write(files, "2026-11-28-11:00", [[("l:4", "pending")]])

    window = pd.read_parquet(files.path(Stage.RECORDS, LIST, "2026-11-28-09:00"))
    whole_list = pd.read_parquet(f"{base}/{Stage.RECORDS.value}/{LIST}")

    assert sorted(window["external_id"]) == ["l:1", "l:2"]
    assert sorted(whole_list["external_id"]) == ["l:1", "l:2", "l:3"], "a window still being written is hidden"
    manifest = files.manifest(Stage.RECORDS, LIST, "2026-11-28-09:00")
    assert {key: manifest[key] for key in ("transformed", "rows", "parts")} == {"transformed": 2, "rows": 2, "parts": 2}
    in_progress.abort()


def test_a_window_written_again_holds_only_the_new_rows(base):
    files = WindowFiles(base)
    write(files, "2026-11-28-09:00", [[("l:1", "subscribed")], [("l:2", "cleaned")], [("l:3", "pending")]]).commit({})
    rewrite = write(files, "2026-11-28-09:00", [[("l:1", "unsubscribed")]])

    assert sorted(pd.read_parquet(files.path(Stage.RECORDS, LIST, "2026-11-28-09:00"))["external_id"]) == [
        "l:1", "l:2", "l:3"], "until the new one is committed, the old materialization stands"
    rewrite.commit({})

    frame = pd.read_parquet(files.path(Stage.RECORDS, LIST, "2026-11-28-09:00"))
    assert frame.to_dict("records") == [{"external_id": "l:1", "status": "unsubscribed"}]
    assert files.table(Stage.RECORDS, LIST, "2026-11-28-09:00", SCHEMA).num_rows == 1


def test_an_empty_window_reads_as_an_empty_frame_with_its_columns(base):
    files = WindowFiles(base)
    write(files, "2026-11-28-09:00", []).commit({"transformed": 0})

    frame = pd.read_parquet(files.path(Stage.RECORDS, LIST, "2026-11-28-09:00"))

    assert list(frame.columns) == ["external_id", "status"] and frame.empty
    assert files.table(Stage.RECORDS, LIST, "2026-11-28-09:00", SCHEMA).num_rows == 0


def test_a_day_is_forgotten_with_its_half_written_windows(base):
    files = WindowFiles(base)
    write(files, "2026-11-28-09:00", [[("l:1", "subscribed")]]).commit({})
    write(files, "2026-11-28-23:00", [[("l:2", "subscribed")]])
    write(files, "2026-11-29-00:00", [[("l:3", "subscribed")]]).commit({})

    assert files.forget_day("2026-11-28") == 2

    with pytest.raises(WindowNotMaterialized):
        files.manifest(Stage.RECORDS, LIST, "2026-11-28-09:00")
    assert list(pd.read_parquet(f"{base}/{Stage.RECORDS.value}/{LIST}")["external_id"]) == ["l:3"]


def test_a_window_never_written_is_named_in_one_line(base):
    with pytest.raises(WindowNotMaterialized, match=r"^contact_records has not been materialized for acme.1a2d7ebf82 window 2026-11-28-09:00$"):
        WindowFiles(base).table(Stage.RECORDS, LIST, "2026-11-28-09:00", SCHEMA)
