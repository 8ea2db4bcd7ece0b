"""The sweep: one Mailchimp scan over consecutive windows of a list, each window streamed on.

When a run does all three steps, they run as one stream: each settled chunk of members is
written, transformed and handed to the exporter while Mailchimp is still paging, so transforming
and exporting use the time the scan spends waiting on Mailchimp instead of following it. Memory is
bounded by the chunk and the batches in flight, never by the window.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from importer_dagster.core.http import ApiClient
from importer_dagster.core.mailchimp import MemberScan, ScanStats
from importer_dagster.core.memory import streaming_memory
from importer_dagster.core.ordering import OrderedChunks, Settled
from importer_dagster.core.stream import WindowStream

MAX_UNSETTLED_WINDOWS = 4
"""Windows the sweep has passed whose last batches may still be in flight: the scan goes on
without waiting for them, and memory holds at most this many windows' batches."""
PROGRESS_EVERY_S = 10.0
_BEGINNING = datetime.min.replace(tzinfo=timezone.utc)
"""Where a list's first window starts: it reaches back to the beginning of time."""


@dataclass
class FetchStats:
    fetched: int
    pages: int
    repair_pages: int
    duration_s: float


def _progress_logger(log: logging.Logger, label: str) -> Callable[[ScanStats], None]:
    """A line every PROGRESS_EVERY_S of a long sweep. A sweep that ends sooner logs only its total:
    the hourly tick sweeps thousands of lists a page or two long, and each line is an event kept
    in the instance for the length of the horizon."""
    started = time.monotonic()
    last = [started]

    def report(stats: ScanStats) -> None:
        now = time.monotonic()
        if stats.pages >= stats.expected_pages or now - last[0] < PROGRESS_EVERY_S:
            return
        last[0] = now
        elapsed = max(now - started, 1e-6)
        rate = stats.rows / elapsed
        remaining = max(stats.expected_pages - stats.pages, 0)
        eta = remaining * elapsed / stats.pages if stats.pages else 0.0
        log.info(
            f"{label}: page {stats.pages}/{max(stats.expected_pages, stats.pages)}, "
            f"{stats.rows} members, {rate:.0f}/s, ETA {eta:.0f} s"
        )

    return report


class _Router:
    """Hands each member to the stream of its window, and completes windows the scan has passed.

    Members come in ascending `last_changed`, so a window is complete as soon as a member beyond
    its end arrives: its last batch goes out then, and its answers are settled later, without
    holding up the scan. Most members belong to the window the one before them went to, so that
    window's bounds are checked first, and the search over all windows runs only when it changes.
    """

    def __init__(self, streams: Sequence[WindowStream]):
        self.streams = streams
        self.ends = [stream.window.end for stream in streams]
        self.passed = 0
        self.settling: deque[WindowStream] = deque()
        self._current: tuple[datetime, datetime, OrderedChunks] | None = None

    def route(self, rows: list[Settled]) -> None:
        for row in rows:
            current = self._current
            if current is not None and row[0] is not None and current[0] <= row[0] < current[1]:
                current[2].add(row)
            else:
                self._route_to_another_window(row)

    def _route_to_another_window(self, row: Settled) -> None:
        changed = row[0]
        if changed is None:
            self.streams[0].buffer.add(row)
            return
        index = bisect.bisect_right(self.ends, changed)
        while self.passed < min(index, len(self.streams)):
            self._pass(self.streams[self.passed])
            self.passed += 1
        if index < len(self.streams) and self.streams[index].window.contains(changed):
            stream = self.streams[index]
            self._current = (stream.window.start or _BEGINNING, stream.window.end, stream.buffer)
            stream.buffer.add(row)

    def _pass(self, stream: WindowStream) -> None:
        stream.complete()
        self.settling.append(stream)
        while self.settling and (len(self.settling) > MAX_UNSETTLED_WINDOWS or self.settling[0].settled):
            self.settling.popleft().settle()

    def finish(self) -> None:
        for stream in self.streams:
            stream.complete()
            stream.settle()


def sweep_windows(
    client: ApiClient,
    streams: Sequence[WindowStream],
    *,
    page_size: int,
    parallelism: int,
    log: logging.Logger,
) -> dict[str, FetchStats]:
    """One Mailchimp sweep over consecutive windows of one list, each window to its own stream.

    Spanning several windows in one sweep is what makes a list's history (a full sync followed by
    hundreds of mostly empty hours) cost one scan instead of hundreds. The files are committed
    only when the whole sweep succeeded.
    """
    streams = sorted(streams, key=lambda stream: stream.window.end)
    first, last = streams[0].window, streams[-1].window
    label = f"{first.list_key} windows {first.window_key}..{last.window_key}" if len(streams) > 1 else str(first)
    started = time.monotonic()
    scan = MemberScan(
        client, first.list_id, first.start, last.end,
        page_size=page_size, parallelism=parallelism, on_page=_progress_logger(log, label),
    )
    router = _Router(streams)
    try:
        with streaming_memory():
            for rows in scan.batches():
                router.route(rows)
            router.finish()
        duration = time.monotonic() - started
        stats = _commit(streams, scan.stats, duration)
    except BaseException:
        for stream in streams:
            stream.abort()
        raise
    log.info(f"{label}: fetched {scan.stats.rows} members in {scan.stats.pages} pages ({duration:.1f} s)")
    return stats


def _commit(streams: Sequence[WindowStream], scan: ScanStats, duration: float) -> dict[str, FetchStats]:
    stats = {}
    for stream in streams:
        fetched = FetchStats(stream.buffer.count, scan.pages, scan.repair_pages, duration)
        stats[stream.window.window_key] = fetched
        stream.source.commit(
            {"fetched": fetched.fetched, "pages": scan.pages, "repair_pages": scan.repair_pages, "duration_s": duration}
        )
        if stream.records:
            stream.records.commit()
    return stats
