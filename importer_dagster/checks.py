"""Data-quality checks on every imported window, and the rules that decide them.

The per-window checks run inside the import step, because a window whose records are mostly
invalid must never reach the Contacts API: that is what `blocking` promises, and only the step
that exports can keep it. The rules are plain functions so they can be tested on numbers alone.
"""

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import dagster as dg

from importer_dagster.partitions import (
    FIRST_WINDOW_KEY,
    LISTS_PARTITIONS_NAME,
    latest_closed_window,
    list_windows_partitions,
)
from importer_dagster.resources import ImporterStorage

MAX_INVALID_SHARE_ENV = "IMPORTER_MAX_INVALID_SHARE"
DEFAULT_MAX_INVALID_SHARE = 0.2

RECORDS = dg.AssetKey("contact_records")
EXPORTED = dg.AssetKey("exported_batches")

invalid_share_check = dg.AssetCheckSpec(
    "invalid_share_below_threshold",
    asset=RECORDS,
    blocking=True,
    description=f"The share of members that fail validation stays under {MAX_INVALID_SHARE_ENV} "
    f"(default {DEFAULT_MAX_INVALID_SHARE:.0%}); a window above it is not exported.",
)
reconciliation_check = dg.AssetCheckSpec(
    "fetched_equals_exported_rejected_dead_lettered",
    asset=EXPORTED,
    description="Every contact fetched was exported, skipped as unchanged, rejected by the API, or dead-lettered.",
)
duplicates_check = dg.AssetCheckSpec(
    "no_duplicate_external_id",
    asset=RECORDS,
    description="No external_id appears twice in a window.",
)
window_check_specs = [invalid_share_check, reconciliation_check, duplicates_check]


class WindowBlocked(Exception):
    """A window that failed a blocking check: retrying cannot fix its data."""

    retryable = False


def max_invalid_share() -> float:
    raw = os.environ.get(MAX_INVALID_SHARE_ENV)
    return float(raw) if raw else DEFAULT_MAX_INVALID_SHARE


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
class CheckOutcomes:
    """Per-window verdicts gathered over a run; a run over many windows reports each failing one."""

    too_invalid: list[str]
    unreconciled: list[str]
    duplicated: list[str]
    windows: int = 0

    @classmethod
    def empty(cls) -> "CheckOutcomes":
        return cls([], [], [])

    def results(self, threshold: float) -> list[dg.AssetCheckResult]:
        def result(spec: dg.AssetCheckSpec, failing: list[str], severity: dg.AssetCheckSeverity, **extra):
            return dg.AssetCheckResult(
                asset_key=spec.asset_key,
                check_name=spec.name,
                passed=not failing,
                severity=severity,
                metadata={"windows_checked": self.windows, "failing_windows": len(failing),
                          "failing": dg.MetadataValue.json(failing[:100]), **extra},
            )

        return [
            result(invalid_share_check, self.too_invalid, dg.AssetCheckSeverity.ERROR, threshold=threshold),
            result(reconciliation_check, self.unreconciled, dg.AssetCheckSeverity.ERROR),
            result(duplicates_check, self.duplicated, dg.AssetCheckSeverity.ERROR),
        ]


def stale_windows(
    statuses: dict[str, dg.AssetPartitionStatus | None], lists: list[str], now: datetime
) -> tuple[list[str], list[str]]:
    """(late, overdue): windows not imported an hour after they closed, and two hours after.

    The schedule imports a window five minutes after it closes; an hour without it is worth a
    warning, two hours is the promise broken.
    """
    late_key = latest_closed_window(now - timedelta(hours=1))
    overdue_key = latest_closed_window(now - timedelta(hours=2))
    late, overdue = [], []
    for list_key in lists:
        for window, bucket in ((overdue_key, overdue), (late_key, late)):
            key = f"{list_key}|{window}"
            if window >= FIRST_WINDOW_KEY and statuses.get(key) != dg.AssetPartitionStatus.MATERIALIZED:
                bucket.append(key)
                break
    return late, overdue


@dg.asset_check(
    asset=EXPORTED,
    name="latest_windows_fresh",
    description="Every active list has its latest closed windows imported: WARN an hour after a "
    "window closed, ERROR after two.",
)
def freshness_check(context: dg.AssetCheckExecutionContext, storage: ImporterStorage) -> dg.AssetCheckResult:
    instance = context.instance
    retired = set(storage.retired_lists().keys())
    lists = [key for key in instance.get_dynamic_partitions(LISTS_PARTITIONS_NAME) if key not in retired]
    now = datetime.now(timezone.utc)
    candidates = [
        f"{key}|{latest_closed_window(now - timedelta(hours=hours))}" for key in lists for hours in (1, 2)
    ]
    candidates = [key for key in candidates if key.split("|")[1] >= FIRST_WINDOW_KEY]
    statuses = (instance.get_status_by_partition(EXPORTED, candidates, list_windows_partitions) if candidates else None) or {}
    late, overdue = stale_windows(statuses, lists, now)
    return dg.AssetCheckResult(
        passed=not late and not overdue,
        severity=dg.AssetCheckSeverity.ERROR if overdue else dg.AssetCheckSeverity.WARN,
        metadata={
            "active_lists": len(lists),
            "late_windows": len(late),
            "overdue_windows": len(overdue),
            "failing": dg.MetadataValue.json((overdue + late)[:100]),
        },
    )


freshness_job = dg.define_asset_job(
    "freshness_check_job", selection=dg.AssetSelection.checks(freshness_check)
)
freshness_schedule = dg.ScheduleDefinition(
    job=freshness_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
