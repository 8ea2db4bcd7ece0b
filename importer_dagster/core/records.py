"""The records stage: members transformed chunk by chunk, written, and counted for the checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from importer_dagster.core.dead_letters import DeadLetters
from importer_dagster.core.files import WindowFiles
from importer_dagster.core.ordering import Member
from importer_dagster.core.stages import Stage
from importer_dagster.core.transform import RECORD_SCHEMA, transform_members
from importer_dagster.core.windows import ListWindow


@dataclass
class TransformStats:
    transformed: int = 0
    invalid: int = 0
    duplicates: int = 0


class RecordsStage:
    """Transforms a window chunk by chunk, writes the records, and keeps what the checks count."""

    def __init__(self, files: WindowFiles, dead_letters: DeadLetters, window: ListWindow, run_id: str):
        self.window = window
        self.run_id = run_id
        self.dead_letters = dead_letters
        self.writer = files.writer(Stage.RECORDS, window.list_key, window.window_key, RECORD_SCHEMA)
        self.stats = TransformStats()
        self._hashes: list[np.ndarray] = []

    def add(self, members: list[Member]) -> list[dict[str, Any]]:
        result = transform_members(members)
        self.writer.write(result.table())
        self._hashes.append(np.fromiter((hash(r["external_id"]) for r in result.records), np.int64, len(result.records)))
        self.dead_letters.record(
            account=self.window.account_id,
            list_key=self.window.list_key,
            window=self.window.window_key,
            stage="transform",
            run_id=self.run_id,
            letters=result.dead_letters,
        )
        self.stats.transformed += len(result.records)
        self.stats.invalid += len(result.dead_letters)
        return result.records

    def commit(self) -> TransformStats:
        self.stats.duplicates = _count_duplicates(self._hashes)
        self.writer.commit(
            {"transformed": self.stats.transformed, "invalid": self.stats.invalid, "duplicates": self.stats.duplicates}
        )
        return self.stats


def _count_duplicates(hashes: list[np.ndarray]) -> int:
    """8 bytes per record instead of a set of a million strings."""
    if not hashes:
        return 0
    ordered = np.sort(np.concatenate(hashes))
    return int(np.count_nonzero(ordered[1:] == ordered[:-1]))


def transform_window(
    files: WindowFiles, dead_letters: DeadLetters, window: ListWindow, run_id: str
) -> TransformStats:
    """Transform a window fetched by an earlier run, from its files."""
    stage = RecordsStage(files, dead_letters, window, run_id)
    try:
        for part in files.column(Stage.SOURCE, window.list_key, window.window_key, "member"):
            stage.add([orjson.loads(encoded) for encoded in part])
        return stage.commit()
    except BaseException:
        stage.writer.abort()
        raise
