"""Data-quality checks on every imported window, and the freshness check across each group's lists.

The per-window checks are decided inside the import step (`core.quality` holds the rules), because
only the step that exports can keep a blocking check's promise; this module declares them to
Dagster and turns a run's verdicts into check results. Freshness is a check of the same step too:
evaluated in the run that materialized the asset, it is always the result the asset's card shows
(a separate check op would be skipped, since the step yields events rather than outputs).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg

from importer_dagster.core import settings
from importer_dagster.core.history import SUCCEEDED, ImportHistory
from importer_dagster.core.importing import RunOutcome
from importer_dagster.core.stages import Stage
from importer_dagster.core.windows import horizon_start, latest_closed_window, partition_key, window_key_at
from importer_dagster.partitions import ListGroup

INVALID_SHARE = "invalid_share_below_threshold"
RECONCILED = "fetched_equals_exported_rejected_dead_lettered"
NO_DUPLICATES = "no_duplicate_external_id"
FRESH = "latest_windows_fresh"


def window_check_specs(group: ListGroup) -> list[dg.AssetCheckSpec]:
    """Decided window by window inside the import step."""
    records, exported = group.asset_keys[Stage.RECORDS], group.asset_keys[Stage.EXPORTED]
    return [
        dg.AssetCheckSpec(
            INVALID_SHARE, asset=records, blocking=True,
            description=f"The share of members that fail validation stays under {settings.MAX_INVALID_SHARE.name} "
            f"(default {settings.MAX_INVALID_SHARE.default:.0%}); a window above it is not exported.",
        ),
        dg.AssetCheckSpec(
            RECONCILED, asset=exported,
            description="Every contact fetched was exported, skipped as unchanged, rejected by the API, or dead-lettered.",
        ),
        dg.AssetCheckSpec(NO_DUPLICATES, asset=records, description="No external_id appears twice in a window."),
    ]


def freshness_check(group: ListGroup) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        FRESH,
        asset=group.asset_keys[Stage.EXPORTED],
        description="Every active list of the group has its latest closed windows imported: WARN an hour after a "
        "window closed, ERROR after two. Evaluated after every import run, so the asset's card always shows it, "
        "and every quarter hour by the freshness_sensor, which alerts.",
    )


def window_check_results(group: ListGroup, outcome: RunOutcome) -> list[dg.AssetCheckResult]:
    """A run over many windows reports each check once, listing the windows that failed it."""
    verdicts = outcome.verdicts
    records, exported = group.asset_keys[Stage.RECORDS], group.asset_keys[Stage.EXPORTED]

    def result(key: dg.AssetKey, name: str, failing: list[str], **extra) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=name,
            passed=not failing,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"windows_checked": verdicts.windows, "failing_windows": len(failing),
                      "failing": dg.MetadataValue.json(failing[:100]), **extra},
        )

    return [
        result(records, INVALID_SHARE, verdicts.too_invalid, threshold=outcome.threshold),
        result(exported, RECONCILED, verdicts.unreconciled),
        result(records, NO_DUPLICATES, verdicts.duplicated),
    ]


def stale_windows(statuses: dict[tuple[str, str], str], lists: list[str], now: datetime) -> tuple[list[str], list[str]]:
    """(late, overdue): windows not imported an hour after they closed, and two hours after.

    The schedule imports a window five minutes after it closes; an hour without it is worth a
    warning, two hours is the promise broken.
    """
    late_key = latest_closed_window(now - timedelta(hours=1))
    overdue_key = latest_closed_window(now - timedelta(hours=2))
    first_key = window_key_at(horizon_start(now))
    late, overdue = [], []
    for list_key in lists:
        for window, bucket in ((overdue_key, overdue), (late_key, late)):
            if window >= first_key and statuses.get((list_key, window)) != SUCCEEDED:
                bucket.append(partition_key(list_key, window))
                break
    return late, overdue


@dataclass(frozen=True)
class Freshness:
    check: dg.AssetCheckSpec
    lists: int
    late: list[str]
    overdue: list[str]

    @property
    def passed(self) -> bool:
        return not self.late and not self.overdue

    @property
    def severity(self) -> dg.AssetCheckSeverity:
        return dg.AssetCheckSeverity.ERROR if self.overdue else dg.AssetCheckSeverity.WARN

    def metadata(self) -> dict:
        return {
            "active_lists": self.lists,
            "late_windows": len(self.late),
            "overdue_windows": len(self.overdue),
            "failing": dg.MetadataValue.json((self.overdue + self.late)[:100]),
        }

    def result(self) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            asset_key=self.check.asset_key, check_name=self.check.name, passed=self.passed, severity=self.severity,
            metadata=self.metadata(),
        )

    def evaluation(self) -> dg.AssetCheckEvaluation:
        return dg.AssetCheckEvaluation(
            asset_key=self.check.asset_key, check_name=self.check.name, passed=self.passed, severity=self.severity,
            metadata=self.metadata(),
        )


def freshness(group: ListGroup, active_lists: list[str], history: ImportHistory, now: datetime) -> Freshness:
    """From the import history: one indexed query, however long Dagster's own status cache takes to build."""
    first, last = latest_closed_window(now - timedelta(hours=2)), latest_closed_window(now - timedelta(hours=1))
    late, overdue = stale_windows(history.statuses(active_lists, first, last), active_lists, now)
    return Freshness(freshness_check(group), len(active_lists), late, overdue)
