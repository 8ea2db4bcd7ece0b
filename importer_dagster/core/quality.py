"""The data-quality rules a window must pass, as plain numbers: testable without any run.

The per-window checks are decided inside the import, because a window whose records are mostly
invalid must never reach the Contacts API, and only the code that exports can keep that promise.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class WindowBlocked(Exception):
    """A window that failed a blocking check: retrying cannot fix its data."""

    retryable = False


@dataclass(frozen=True)
class WindowCounts:
    fetched: int
    transformed: int
    dead_lettered: int
    duplicates: int
    exported: int = 0
    skipped: int = 0
    rejected: int = 0

    @property
    def invalid_share(self) -> float:
        return self.dead_lettered / self.fetched if self.fetched else 0.0

    def too_invalid(self, threshold: float) -> bool:
        return self.invalid_share > threshold

    def reconciles(self) -> bool:
        return self.fetched == self.exported + self.skipped + self.rejected + self.dead_lettered


@dataclass
class CheckVerdicts:
    """Per-window verdicts gathered over a run: the partition keys that failed each check."""

    too_invalid: list[str] = field(default_factory=list)
    unreconciled: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    windows: int = 0

    def judge_before_export(
        self, window: str, key: str, counts: WindowCounts, threshold: float, already_sent: int = 0
    ) -> None:
        """Records the window's verdicts; raises WindowBlocked if it must not be exported."""
        self.windows += 1
        if counts.duplicates:
            self.duplicated.append(key)
        if counts.too_invalid(threshold):
            self.too_invalid.append(key)
            sent = f" ({already_sent} valid records went out before the share crossed it)" if already_sent else ""
            raise WindowBlocked(
                f"{window}: {counts.invalid_share:.0%} of members are invalid (threshold {threshold:.0%}); "
                f"not exported{sent}. See `importer-dagster dead-letters`."
            )
