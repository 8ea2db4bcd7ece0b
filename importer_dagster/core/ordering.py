"""A window's members in one order that depends only on its content.

Mailchimp does not promise an order among members changed in the same second. Sorting each tie
makes a window's files, and so its export batches and their idempotency keys, depend only on the
window's content.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any

CHUNK_ROWS = 10_000

Member = dict[str, Any]
Settled = tuple[datetime | None, str, Member]
"""(last_changed, member id, member): the sort key first."""
_ORDER = operator.itemgetter(0, 1)


class OrderedChunks:
    """Buffers one window's members and releases them in (last_changed, id) order.

    Members arrive in ascending `last_changed`, so only the newest tie is ever held back; memory
    stays at one chunk plus one tie.
    """

    def __init__(self, release: Callable[[list[Settled]], None]):
        self._release = release
        self._rows: list[Settled] = []
        self._undated: list[Settled] = []
        self.count = 0

    def add(self, row: Settled) -> None:
        self.count += 1
        if row[0] is None:
            self._undated.append(row)
            return
        self._rows.append(row)
        if len(self._rows) >= CHUNK_ROWS:
            newest = max(row[0] for row in self._rows)
            settled = [row for row in self._rows if row[0] < newest]
            if settled:
                self._rows = [row for row in self._rows if row[0] == newest]
                self._release(sorted(settled, key=_ORDER))

    def close(self) -> None:
        if self._rows:
            self._release(sorted(self._rows, key=_ORDER))
        if self._undated:
            self._release(sorted(self._undated, key=_ORDER))
        self._rows, self._undated = [], []
