"""Sensors: discover lists, retry failed windows, and raise alerts."""

import json
import os
import time
import uuid
from datetime import datetime, timezone

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)
from dagster._core.storage.event_log.base import EventLogCursor

from importer_dagster.accounts import current_accounts, split_list_key
from importer_dagster.alerts import run_link, send_alert
from importer_dagster.checks import freshness_check, window_check_specs
from importer_dagster.discovery import discover_lists
from importer_dagster.jobs import import_contacts_job
from importer_dagster.partition_status import failed_partitions
from importer_dagster.partitions import (
    FIRST_WINDOW_KEY,
    LISTS_PARTITIONS_NAME,
    decode_partition_key,
    latest_closed_window,
    lists_partitions,
    range_tags,
)
from importer_dagster.resources import ImporterStorage, MailchimpResource
from importer_dagster.schedules import ACCOUNT_TAG

ACCOUNTS_PER_TICK = 200
"""Each account costs one or two Mailchimp calls; thousands of accounts are polled over several ticks."""
AUTO_RETRY_TAG = "importer/auto-retry"
RETRY_COOLDOWN_ENV = "IMPORTER_RETRY_COOLDOWN_S"
MAX_AUTO_RETRIES_ENV = "IMPORTER_MAX_AUTO_RETRIES"


@dg.sensor(
    job=import_contacts_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers new Mailchimp lists as partitions and imports their history in one run "
    "each; lists that disappear are retired from the schedule, their history kept.",
)
def list_discovery_sensor(
    context: dg.SensorEvaluationContext, mailchimp: MailchimpResource, storage: ImporterStorage
) -> dg.SensorResult:
    accounts = current_accounts().accounts
    start = int(context.cursor or 0) % max(len(accounts), 1)
    polled = accounts[start : start + ACCOUNTS_PER_TICK]
    discovery = discover_lists(polled, mailchimp, f"sensor:list_discovery_sensor:{uuid.uuid4()}")
    for reason in discovery.errors.values():
        context.log.warning(reason)

    registered = context.instance.get_dynamic_partitions(LISTS_PARTITIONS_NAME)
    known = set(registered)
    seen = set(discovery.keys)
    new = [key for key in discovery.keys if key not in known]

    answered = {account.id for account in polled} - set(discovery.errors)
    configured = {account.id for account in accounts}
    gone = {}
    for key in registered:
        account_id = split_list_key(key)[0]
        if account_id not in configured:
            gone[key] = "its account is no longer in the accounts file"
        elif account_id in answered and key not in seen:
            gone[key] = "Mailchimp no longer returns it (deleted, archived, or left the allow-list)"
    retired = storage.retired_lists()
    already_retired = retired.keys()
    retired.retire({key: reason for key, reason in gone.items() if key not in already_retired})
    retired.restore(key for key in seen if key in already_retired)

    last_window = latest_closed_window(datetime.now(timezone.utc))
    history = [
        dg.RunRequest(
            run_key=f"history:{key}",
            tags={**range_tags(f"{key}|{FIRST_WINDOW_KEY}", f"{key}|{last_window}"), ACCOUNT_TAG: split_list_key(key)[0]},
        )
        for key in new
    ]
    if new:
        context.log.info(f"registered {len(new)} new list(s): {', '.join(new[:20])}")
    return dg.SensorResult(
        run_requests=history,
        dynamic_partitions_requests=[lists_partitions.build_add_request(new)] if new else [],
        cursor=str((start + len(polled)) % max(len(accounts), 1)),
    )


def _retry_settings() -> tuple[float, int]:
    return float(os.environ.get(RETRY_COOLDOWN_ENV, 900)), int(os.environ.get(MAX_AUTO_RETRIES_ENV, 3))


@dg.sensor(
    job=import_contacts_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-runs each failed window in a run of its own after a cool-down that doubles each "
    "time; after the last attempt it leaves the window failed and sends one alert.",
)
def failed_partitions_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cooldown, max_attempts = _retry_settings()
    state: dict[str, dict] = json.loads(context.cursor or "{}")
    now = time.time()
    failed = failed_partitions(context.instance)
    state = {key: entry for key, entry in state.items() if key in set(failed)}
    requests, exhausted = [], []
    for key in failed:
        entry = state.setdefault(key, {"attempts": 0, "next_at": now + cooldown, "alerted": False})
        if entry["attempts"] >= max_attempts:
            if not entry["alerted"]:
                exhausted.append(key)
                entry["alerted"] = True
            continue
        if now < entry["next_at"]:
            continue
        entry["attempts"] += 1
        entry["next_at"] = now + cooldown * 2 ** entry["attempts"]
        requests.append(
            dg.RunRequest(
                run_key=f"retry:{key}:{entry['attempts']}",
                partition_key=key,
                tags={ACCOUNT_TAG: split_list_key(key.split("|")[0])[0], AUTO_RETRY_TAG: str(entry["attempts"])},
            )
        )
    if exhausted:
        send_alert(
            f"{len(exhausted)} window(s) still failing after {max_attempts} automatic retries; left failed for a backfill",
            [str(decode_partition_key(key)) for key in exhausted],
            context.log,
        )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(state))


def _run_failure_line(instance: dg.DagsterInstance, run_id: str) -> str | None:
    run = instance.get_run_by_id(run_id)
    if run is None or run.tags.get(AUTO_RETRY_TAG):
        return None
    failures = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_FAILURE).records
    reason = (
        failures[-1].event_log_entry.dagster_event.step_failure_data.error.message.strip()
        if failures
        else "the run failed before its step ran"
    )
    return f"run {run_id[:8]} failed: {reason.splitlines()[0][:600]} ({run_link(run_id)})"


def _check_failure_line(record: AssetCheckExecutionRecord) -> str | None:
    if record.status != AssetCheckExecutionRecordStatus.FAILED or record.event is None:
        return None
    evaluation = record.event.dagster_event.event_specific_data
    if evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.ERROR:
        return None
    failing = evaluation.metadata.get("failing")
    windows = ", ".join(failing.value[:10]) if failing else "see the run"
    return (
        f"check {evaluation.check_name} on {evaluation.asset_key.to_user_string()} failed for {windows} "
        f"({run_link(record.run_id)})"
    )


def _resolved_up_to(instance: dg.DagsterInstance, history: list[AssetCheckExecutionRecord], seen: int) -> int:
    """Stop short of a check whose run is still going: its verdict arrives later, under the same id."""
    planned = [
        r.id
        for r in history
        if r.status == AssetCheckExecutionRecordStatus.PLANNED
        and (run := instance.get_run_by_id(r.run_id)) is not None
        and not run.is_finished
    ]
    done = [r.id for r in history if not planned or r.id < min(planned)]
    return max([seen, *done])


def _check_keys() -> list[dg.AssetCheckKey]:
    return [spec.key for spec in window_check_specs] + list(freshness_check.check_keys)


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One alert per evaluation, grouping every run failure and ERROR check failure since the last.",
)
def alert_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason | None:
    instance = context.instance
    state = json.loads(context.cursor) if context.cursor else None
    checks = {key.to_user_string(): key for key in _check_keys()}
    if state is None:
        latest = instance.fetch_run_status_changes(DagsterEventType.RUN_FAILURE, limit=1).records
        state = {
            "runs": EventLogCursor.from_storage_id(latest[0].storage_id).to_string() if latest else None,
            "checks": {
                name: max([0, *(r.id for r in instance.event_log_storage.get_asset_check_execution_history(key, limit=1))])
                for name, key in checks.items()
            },
        }
        context.update_cursor(json.dumps(state))
        return dg.SkipReason("started watching for failures")

    lines = []
    failures = instance.fetch_run_status_changes(
        DagsterEventType.RUN_FAILURE, limit=1000, cursor=state["runs"], ascending=True
    )
    lines += filter(None, (_run_failure_line(instance, record.run_id) for record in failures.records))
    state["runs"] = failures.cursor if failures.records else state["runs"]
    for name, key in checks.items():
        seen = state["checks"].get(name, 0)
        history = [
            record
            for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=1000)
            if record.id > seen
        ]
        lines += filter(None, (_check_failure_line(record) for record in reversed(history)))
        state["checks"][name] = _resolved_up_to(instance, history, seen)
    context.update_cursor(json.dumps(state))
    if not lines:
        return dg.SkipReason("no new failures")
    send_alert(f"{len(lines)} failure(s) in the importer", lines, context.log)
    return None
