"""Window files: each (stage, list, window) as a folder of Parquet parts and a manifest.

A window can hold a million contacts (a big list's full sync), so no step ever holds one whole:
each step streams Parquet parts of a few thousand rows from the step before it. Parts are written
aside, in a hidden `.<window>.tmp-…` folder, and published when the window is complete, so a step
that dies half-way leaves the previous materialization intact and a retry starts clean.

The folder is a `Place`: local disk by default, or an object store that every worker host
shares (`s3://bucket/prefix`, through fsspec), so a window imported on one host can be read or
exported again on another. Local disk publishes by renaming the folder, atomically. An object
store cannot rename: its parts are copied into the window's folder under the attempt's own names,
the manifest naming them is written, and only then are the earlier parts deleted. A reader that
goes by the manifest (the import, the IO manager) sees one whole materialization or the other,
never a mix.

The layout is what Arrow's and pandas' dataset readers expect: `pd.read_parquet(<window folder>)`
reads a window, and `pd.read_parquet(<list folder>)` every window of a list. Their readers skip
names that start with `_` or `.`, which is why the manifest is `_manifest.json`. An empty window
still has one empty part, so it reads as an empty frame with its columns.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from importer_dagster.core.stages import Stage

MANIFEST = "_manifest.json"
EARLIER_MANIFEST = "manifest.json"
"""Where windows written before the manifest was hidden keep it."""


class WindowNotMaterialized(LookupError):
    pass


class Place:
    """A folder on local disk or in an object store, named by a path or a URL, reached through fsspec.

    Object-store credentials and endpoints come from the environment as fsspec and boto read them
    (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`), never from config.
    """

    def __init__(self, url: str | Path):
        # Other hosts write here too: a listing cached by a long-lived process would hide their windows.
        self.fs, self.root = fsspec.core.url_to_fs(str(url), use_listings_cache=False)
        self.local = isinstance(self.fs, LocalFileSystem)

    def join(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def url(self, path: str) -> str:
        """As a person would type it to read the files: a local path, or the object store's URL."""
        return path if self.local else self.fs.unstrip_protocol(path)

    def remove_folders(self, folders: list[str]) -> None:
        """Folders and all they hold. Some object stores (SeaweedFS) keep a folder's own entry after
        its last object goes; deleting the `folder/` key removes it, and is a no-op on S3."""
        existing = [folder for folder in folders if self.fs.exists(folder)]
        if existing:
            self.fs.rm(existing, recursive=True)
        if not self.local:
            for folder in folders:
                try:
                    self.fs.rm_file(f"{folder}/")
                except FileNotFoundError:
                    pass


class WindowWriter:
    def __init__(self, place: Place, final_dir: str, schema: pa.Schema):
        self.place = place
        self.final_dir = final_dir
        self.schema = schema
        self.attempt = uuid.uuid4().hex[:8]
        parent, name = posixpath.split(final_dir)
        self._tmp = posixpath.join(parent, f".{name}.tmp-{self.attempt}")
        place.fs.makedirs(self._tmp, exist_ok=True)
        self._parts: list[str] = []
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self._write(table)
        self.rows += table.num_rows

    def _write(self, table: pa.Table) -> None:
        name = f"part-{self.attempt}-{len(self._parts):05d}.parquet"
        pq.write_table(table, posixpath.join(self._tmp, name), filesystem=self.place.fs)
        self._parts.append(name)

    def commit(self, manifest: dict[str, Any]) -> None:
        if not self._parts:
            self._write(self.schema.empty_table())
        document = json.dumps({**manifest, "rows": self.rows, "parts": len(self._parts), "files": self._parts})
        if self.place.local:
            self._publish_by_rename(document)
        else:
            self._publish_by_copy(document)

    def _publish_by_rename(self, document: str) -> None:
        fs = self.place.fs
        fs.pipe_file(posixpath.join(self._tmp, MANIFEST), document.encode())
        parent, name = posixpath.split(self.final_dir)
        old = posixpath.join(parent, f".{name}.old-{self.attempt}")
        if fs.exists(self.final_dir):
            fs.mv(self.final_dir, old, recursive=True)
        fs.mv(self._tmp, self.final_dir, recursive=True)
        self.place.remove_folders([old])

    def _publish_by_copy(self, document: str) -> None:
        fs = self.place.fs
        earlier = fs.ls(self.final_dir, detail=False) if fs.exists(self.final_dir) else []
        for name in self._parts:
            fs.copy(posixpath.join(self._tmp, name), posixpath.join(self.final_dir, name))
        fs.pipe_file(posixpath.join(self.final_dir, MANIFEST), document.encode())
        stale = [path for path in earlier if posixpath.basename(path) not in {MANIFEST, *self._parts}]
        if stale:
            fs.rm(stale)
        self.abort()

    def abort(self) -> None:
        self.place.remove_folders([self._tmp])


class WindowFiles:
    """Chunked Parquet files per (stage, list, window) under one folder, local or shared."""

    def __init__(self, base: str | Path | Place):
        self.place = base if isinstance(base, Place) else Place(base)

    def _dir(self, stage: Stage, list_key: str, window_key: str) -> str:
        return self.place.join(stage.value, list_key, window_key)

    def path(self, stage: Stage, list_key: str, window_key: str) -> str:
        """Where a window's folder is, as `pd.read_parquet` takes it."""
        return self.place.url(self._dir(stage, list_key, window_key))

    def writer(self, stage: Stage, list_key: str, window_key: str, schema: pa.Schema) -> WindowWriter:
        return WindowWriter(self.place, self._dir(stage, list_key, window_key), schema)

    def manifest(self, stage: Stage, list_key: str, window_key: str) -> dict[str, Any]:
        folder = self._dir(stage, list_key, window_key)
        for name in (MANIFEST, EARLIER_MANIFEST):
            try:
                return json.loads(self.place.fs.cat_file(posixpath.join(folder, name)))
            except FileNotFoundError:
                continue
        raise WindowNotMaterialized(f"{stage.value} has not been materialized for {list_key} window {window_key}")

    def _parts(self, stage: Stage, list_key: str, window_key: str) -> list[str]:
        """The parts the manifest names: exactly one materialization's, whatever else the folder holds."""
        manifest = self.manifest(stage, list_key, window_key)
        folder = self._dir(stage, list_key, window_key)
        if "files" in manifest:
            return [posixpath.join(folder, name) for name in manifest["files"]]
        return sorted(self.place.fs.glob(posixpath.join(folder, "part-*.parquet")))

    def _read(self, path: str, **options: Any) -> pa.Table:
        return pq.read_table(path, filesystem=self.place.fs, **options)

    def column(self, stage: Stage, list_key: str, window_key: str, name: str) -> Iterator[list[Any]]:
        for part in self._parts(stage, list_key, window_key):
            yield self._read(part, columns=[name]).column(name).to_pylist()

    def rows(self, stage: Stage, list_key: str, window_key: str) -> Iterator[list[dict[str, Any]]]:
        """Plain dicts built column by column, which costs less than Arrow's row-wise `to_pylist`."""
        for part in self._parts(stage, list_key, window_key):
            table = self._read(part)
            columns = [column.to_pylist() for column in table.columns]
            yield [dict(zip(table.column_names, row, strict=True)) for row in zip(*columns, strict=True)]

    def table(self, stage: Stage, list_key: str, window_key: str, schema: pa.Schema) -> pa.Table:
        """The whole window: for people reading it, not for the import, which streams its parts."""
        parts = [self._read(part, schema=schema) for part in self._parts(stage, list_key, window_key)]
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def forget_day(self, day: str) -> int:
        """Every window folder of one UTC day (`YYYY-MM-DD`), of every stage and list, and any left
        half-written; one listing per list. Returns how many."""
        fs = self.place.fs
        folders = []
        for stage in Stage:
            stage_dir = self.place.join(stage.value)
            if not fs.exists(stage_dir):
                continue
            for list_dir in fs.ls(stage_dir, detail=False):
                folders += [path for path in fs.ls(list_dir, detail=False)
                            if posixpath.basename(path).lstrip(".").startswith(f"{day}-")]
        self.place.remove_folders(folders)
        return len(folders)
