"""One window's share of a sweep: written as the source, transformed, and exported as it goes."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson
import pyarrow as pa

from importer_dagster.core.export import Exporter, ExportStats
from importer_dagster.core.files import WindowFiles, WindowWriter
from importer_dagster.core.http import HttpError
from importer_dagster.core.ordering import OrderedChunks, Settled
from importer_dagster.core.records import RecordsStage
from importer_dagster.core.stages import Stage
from importer_dagster.core.windows import ListWindow


SOURCE_SCHEMA = pa.schema([("member_id", pa.string()), ("last_changed", pa.string()), ("member", pa.string())])


def source_table(rows: Sequence[Settled]) -> pa.Table:
    """The member is kept whole, as Mailchimp sent it (JSON text), so a dead letter can always show it."""
    return pa.table(
        [
            pa.array([row[1] for row in rows], pa.string()),
            pa.array([_iso(row) for row in rows], pa.string()),
            pa.array([orjson.dumps(row[2]) for row in rows], pa.string()),
        ],
        schema=SOURCE_SCHEMA,
    )


def _iso(row: Settled) -> str | None:
    """Mailchimp's own text when it is already the ISO form in UTC, as it nearly always is."""
    changed, _, member = row
    if changed is None:
        return None
    text = member.get("last_changed")
    if len(text) == 25 and text[10] == "T" and text.endswith("+00:00"):
        return text
    return changed.isoformat()


class WindowStream:
    """What happens to one window's members as the sweep releases them, chunk by chunk.

    Always: the chunk is written as the source. With a records stage: it is transformed too. With
    an exporter: the valid records are sent at once, but only while the share of invalid members
    seen so far stays within `max_invalid_share`. The first chunk holds ten thousand members or the
    whole window, so a window that is broken throughout sends nothing; a window whose share crosses
    the limit later stops sending at that chunk. Whether the window as a whole is blocked is the
    caller's decision, on the final counts; if it is not, `finish_export` sends the rest from the
    files.
    """

    def __init__(
        self,
        window: ListWindow,
        files: WindowFiles,
        *,
        records: RecordsStage | None = None,
        exporter: Exporter | None = None,
        max_invalid_share: float = 1.0,
    ):
        self.window = window
        self.files = files
        self.source: WindowWriter = files.writer(Stage.SOURCE, window.list_key, window.window_key, SOURCE_SCHEMA)
        self.records = records
        self.exporter = exporter
        self.max_invalid_share = max_invalid_share
        self.export_halted = False
        self.export_error: HttpError | None = None
        self.export_stats: ExportStats | None = None
        self.buffer = OrderedChunks(self._release)

    def _release(self, rows: list[Settled]) -> None:
        self.source.write(source_table(rows))
        if self.records is None:
            return
        valid = self.records.add([row[2] for row in rows])
        if not self._exporting():
            return
        if self.records.stats.invalid > self.max_invalid_share * self.source.rows:
            self.export_halted = True
            return
        self._guarded(self.exporter.add, valid)

    def _exporting(self) -> bool:
        return self.exporter is not None and not (self.export_halted or self.export_error or self.export_stats)

    def _guarded(self, step: Callable[..., Any], *args: Any) -> Any:
        """A failed export fails this window only; the sweep goes on for the others."""
        try:
            return step(*args)
        except HttpError as error:
            self.export_error = error
            self.exporter.close()
            return None

    def complete(self) -> None:
        """The sweep has passed this window: release what is held and send the last batch.

        Members without a usable `last_changed` can still arrive later (they belong to the first
        window); they always fail validation, so they only ever add dead letters.
        """
        self.buffer.close()
        if self._exporting():
            self._guarded(self.exporter.flush)

    @property
    def settled(self) -> bool:
        """Nothing left to wait for: settling now would not block."""
        return not self._exporting() or self.exporter.idle

    def settle(self) -> None:
        if self._exporting():
            self.export_stats = self._guarded(self.exporter.finish)

    def finish_export(self) -> ExportStats | None:
        """After the files are committed: the export's outcome, or None if it failed (`export_error`)."""
        if self.export_halted and not self.export_error:
            self._guarded(self._resume_from_files)
            if not self.export_error:
                self.export_stats = self._guarded(self.exporter.finish)
        self.settle()
        return None if self.export_error else self.export_stats

    def _resume_from_files(self) -> None:
        rows = itertools.chain.from_iterable(self.files.rows(Stage.RECORDS, self.window.list_key, self.window.window_key))
        for chunk in _chunks(itertools.islice(rows, self.exporter.consumed, None), self.exporter.batch_size):
            self.exporter.add(chunk)

    def abort(self) -> None:
        self.source.abort()
        if self.records:
            self.records.writer.abort()
        if self.exporter:
            self.exporter.close()


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
