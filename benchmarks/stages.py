"""Each per-member step of the import timed alone, on pages the Mailchimp simulator served.

The full sync shares this machine's two cores with both simulators and a database, and one run
can differ from the next by a quarter; a change worth a tenth of the import's CPU disappears in
that. Here each step runs alone, over the same pages, in this process, so two commits compare.
"""

import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import requests

from common import MAILCHIMP_URL, start_mailchimp, stop
from full_sync import ACME_KEY_ENV, LIST_ID
from importer_dagster.core.changes import record_hash
from importer_dagster.core.contacts import EncodedBatch, encoded_record
from importer_dagster.core.mailchimp import MEMBER_PAGE_FIELDS, _Deduplicator
from importer_dagster.core.memory import streaming_memory
from importer_dagster.core.ordering import CHUNK_ROWS, OrderedChunks
from importer_dagster.core.stream import source_table
from importer_dagster.core.transform import transform_members
from importer_dagster.simulators.mailchimp import DEMO_KEYS

REPEATS = 9
BATCH_SIZE = 1000


def stages(members: int) -> list[dict]:
    """One row per step: the best of REPEATS, in CPU-µs per member, and the sum of them all."""
    bodies = _pages(members)
    pages = [orjson.loads(body)["members"] for body in bodies]
    deduplicated = _Deduplicator()
    rows = [row for page in pages for row in deduplicated.fresh(page)]
    chunks = [rows[start : start + CHUNK_ROWS] for start in range(0, len(rows), CHUNK_ROWS)]
    transformed = [transform_members([row[2] for row in chunk]) for chunk in chunks]
    records = [record for result in transformed for record in result.records]
    batches = [records[start : start + BATCH_SIZE] for start in range(0, len(records), BATCH_SIZE)]

    def scan() -> None:
        deduplicator = _Deduplicator()
        for page in pages:
            deduplicator.fresh(page)

    def ordering() -> None:
        buffer = OrderedChunks(lambda settled: None)
        for row in rows:
            buffer.add(row)
        buffer.close()

    def transform() -> None:
        for chunk in chunks:
            transform_members([row[2] for row in chunk])

    def parse() -> None:
        for body in bodies:
            orjson.loads(body)

    steps: dict[str, Callable[[], object]] = {
        "page parse (orjson)": parse,
        "scan: duplicates and last_changed": scan,
        "ordering into chunks": ordering,
        "source file's Arrow table": lambda: [source_table(chunk) for chunk in chunks],
        "transform: mapping and validation": transform,
        "records' Arrow table": lambda: [result.table() for result in transformed],
        "change detection: canonical JSON and hash": lambda: [record_hash(encoded_record(r)) for r in records],
        "batch bodies": lambda: [EncodedBatch.of(batch) for batch in batches],
    }
    best = _best_us(steps, len(rows))
    figures = [{"step": name, "cpu_us_per_member": best[name]} for name in steps]
    figures.append({"step": "all of them", "cpu_us_per_member": round(sum(best.values()), 2)})
    return [{**figure, "members": len(rows)} for figure in figures]


def _best_us(steps: dict[str, Callable[[], object]], members: int) -> dict[str, float]:
    """The best of REPEATS rounds, each round running every step once: a slow spell of the
    machine then costs one round of every step rather than all the repeats of one.

    Timed under the sweep's own collector settings: without them, the pages held for the timing
    make every collection slow, and the figures say more about the collector than the step.
    """
    timings: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(REPEATS):
        for name, step in steps.items():
            with streaming_memory():
                started = time.process_time()
                step()
                timings[name].append(time.process_time() - started)
    return {name: round(min(times) / members * 1e6, 2) for name, times in timings.items()}


def _pages(members: int) -> list[bytes]:
    """Every page of the list, fetched as the scan asks for them, before any timing starts."""
    window_end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    simulator = start_mailchimp(Path(tempfile.mkdtemp(prefix="bench-")), None, "--members", str(members),
                                "--history-ends", window_end.isoformat())
    try:
        session = requests.Session()
        session.auth = ("bench", DEMO_KEYS[ACME_KEY_ENV])
        params = {
            "count": 1000, "sort_field": "last_changed", "sort_dir": "ASC",
            "before_last_changed": window_end.isoformat(),
            "fields": MEMBER_PAGE_FIELDS,
        }
        url = f"{MAILCHIMP_URL}/lists/{LIST_ID}/members"
        return [session.get(url, params={**params, "offset": offset}).content for offset in range(0, members, 1000)]
    finally:
        stop(simulator)
