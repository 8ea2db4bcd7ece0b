"""Sensors: discover lists, retry failed windows, and raise alerts."""

import json
import time
import uuid
from datetime import datetime, timezone
from functools import partial

import dagster as dg

from importer_dagster.assets import active_lists
from importer_dagster.checks import freshness, window_check_specs
from importer_dagster.core import settings
from importer_dagster.core.accounts import current_accounts
from importer_dagster.core.alerts import run_link, send_alert
from importer_dagster.core.discovery import discover_lists
from importer_dagster.core.windows import (
    account_of,
    decode_partition_key,
    horizon_start,
    latest_closed_window,
    partition_key,
    split_partition_key,
    window_key_at,
)
from importer_dagster.dagster_internals import CheckExecution, check_executions
from importer_dagster.jobs import import_jobs
from importer_dagster.partitions import GROUP_CAPACITY, GROUPS, assign_groups, range_tags, registered_lists
from importer_dagster.resources import ImporterStorage, MailchimpResource
from importer_dagster.schedules import ACCOUNT_TAG

ACCOUNTS_PER_TICK = 200
"""Each account costs one or two Mailchimp calls; thousands of accounts are polled over several ticks."""
AUTO_RETRY_TAG = "importer/auto-retry"


@dg.sensor(
    jobs=import_jobs,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers new Mailchimp lists as partitions of the list group with the most room and imports "
    "each one's history in one run; lists that disappear are retired from the schedule, their history kept.",
)
def list_discovery_sensor(
    context: dg.SensorEvaluationContext, mailchimp: MailchimpResource, storage: ImporterStorage
) -> dg.SensorResult:
    accounts = current_accounts().accounts
    state = json.loads(context.cursor) if context.cursor else {"next": 0, "unplaced": []}
    start = state["next"] % len(accounts)
    polled = accounts[start : start + ACCOUNTS_PER_TICK]
    discovery = discover_lists(polled, partial(mailchimp.client, correlation_id=f"sensor:list_discovery_sensor:{uuid.uuid4()}"))
    for reason in discovery.errors.values():
        context.log.warning(reason)

    registered = registered_lists(context.instance)
    seen = set(discovery.keys)
    _retire_and_restore(registered, accounts, polled, discovery, seen, storage)
    assigned, unplaced = assign_groups([key for key in discovery.keys if key not in registered], registered)
    _alert_unplaced(unplaced, set(state["unplaced"]), context.log)

    now = datetime.now(timezone.utc)
    first, last = window_key_at(horizon_start(now)), latest_closed_window(now)
    history = [
        dg.RunRequest(
            run_key=f"history:{key}",
            job_name=group.job_name,
            tags={**range_tags(partition_key(key, first), partition_key(key, last)), ACCOUNT_TAG: account_of(key)},
        )
        for group, keys in assigned.items()
        for key in keys
    ]
    for group, keys in assigned.items():
        context.log.info(f"registered {len(keys)} new list(s) in {group.name}: {', '.join(keys[:20])}")
    return dg.SensorResult(
        run_requests=history,
        dynamic_partitions_requests=[group.lists_partitions.build_add_request(keys) for group, keys in assigned.items()],
        cursor=json.dumps({"next": (start + len(polled)) % len(accounts), "unplaced": unplaced}),
    )


def _retire_and_restore(registered, accounts, polled, discovery, seen: set[str], storage: ImporterStorage) -> None:
    answered = {account.id for account in polled} - set(discovery.errors)
    configured = {account.id for account in accounts}
    gone = {}
    for key in registered:
        account_id = account_of(key)
        if account_id not in configured:
            gone[key] = "its account is no longer in the accounts file"
        elif account_id in answered and key not in seen:
            gone[key] = "Mailchimp no longer returns it (deleted, archived, or left the allow-list)"
    retired = storage.retired_lists()
    already_retired = retired.keys()
    retired.retire({key: reason for key, reason in gone.items() if key not in already_retired})
    retired.restore(key for key in seen if key in already_retired)


def _alert_unplaced(unplaced: list[str], alerted: set[str], log) -> None:
    if unplaced and not set(unplaced) <= alerted:
        send_alert(
            f"{len(unplaced)} new list(s) not registered: every list group holds {GROUP_CAPACITY} lists; "
            f"raise {settings.LIST_GROUPS.name}",
            unplaced,
            log,
        )


@dg.sensor(
    jobs=import_jobs,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-runs each failed window in a run of its own after a cool-down that doubles each "
    "time; after the last attempt it leaves the window failed and sends one alert.",
)
def failed_partitions_sensor(context: dg.SensorEvaluationContext, storage: ImporterStorage) -> dg.SensorResult:
    cooldown, max_attempts = settings.RETRY_COOLDOWN_S.get(), settings.MAX_AUTO_RETRIES.get()
    state: dict[str, dict] = json.loads(context.cursor or "{}")
    now = time.time()
    horizon = window_key_at(horizon_start(datetime.now(timezone.utc)))
    failed = [partition_key(record.list_key, record.window) for record in storage.history().failed_since(horizon)]
    groups = registered_lists(context.instance)
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
        group = groups.get(split_partition_key(key)[0])
        if group is None:
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"retry:{key}:{entry['attempts']}",
                job_name=group.job_name,
                partition_key=key,
                tags={ACCOUNT_TAG: account_of(key), AUTO_RETRY_TAG: str(entry["attempts"])},
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
    failures = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    reason = _root_cause(failures[-1].event_log_entry.dagster_event.step_failure_data) if failures else (
        "the run failed before its step ran"
    )
    return f"run {run_id[:8]} failed: {reason} ({run_link(run_id)})"


def _root_cause(failure) -> str:
    """What went wrong, whole and on one line: the step's own description, else the innermost error.

    After the last retry Dagster reports "Exceeded max_retries of 3" and keeps the cause beneath it;
    the alert must name the cause.
    """
    user_failure = failure.user_failure_data
    if user_failure is not None and user_failure.description:
        return " ".join(user_failure.description.split())
    error = failure.error
    while error.cause is not None:
        error = error.cause
    return " ".join(error.message.split())


def _check_failure_line(execution: CheckExecution) -> str | None:
    evaluation = execution.evaluation
    if evaluation is None or evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.ERROR:
        return None
    failing = evaluation.metadata.get("failing")
    windows = ", ".join(failing.value[:10]) if failing else "see the run"
    return (
        f"check {evaluation.check_name} on {evaluation.asset_key.to_user_string()} failed for {windows} "
        f"({run_link(execution.run_id)})"
    )


def _resolved_up_to(instance: dg.DagsterInstance, history: list[CheckExecution], seen: int) -> int:
    """Stop short of a check whose run is still going: its verdict arrives later, under the same id."""
    planned = [
        execution.id
        for execution in history
        if execution.planned
        and (run := instance.get_run_by_id(execution.run_id)) is not None
        and not run.is_finished
    ]
    done = [execution.id for execution in history if not planned or execution.id < min(planned)]
    return max([seen, *done])


def _check_keys() -> list[dg.AssetCheckKey]:
    """The freshness check is the freshness_sensor's to alert on, once per overdue window."""
    return [spec.key for group in GROUPS for spec in window_check_specs(group)]


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
        latest = instance.fetch_run_status_changes(dg.DagsterEventType.RUN_FAILURE, limit=1)
        state = {
            "runs": latest.cursor if latest.records else None,
            "checks": {
                name: max([0, *(execution.id for execution in check_executions(instance, key, limit=1))])
                for name, key in checks.items()
            },
        }
        context.update_cursor(json.dumps(state))
        return dg.SkipReason("started watching for failures")

    lines = []
    failures = instance.fetch_run_status_changes(
        dg.DagsterEventType.RUN_FAILURE, limit=1000, cursor=state["runs"], ascending=True
    )
    lines += filter(None, (_run_failure_line(instance, record.run_id) for record in failures.records))
    state["runs"] = failures.cursor if failures.records else state["runs"]
    for name, key in checks.items():
        seen = state["checks"].get(name, 0)
        history = [execution for execution in check_executions(instance, key, limit=1000) if execution.id > seen]
        lines += filter(None, (_check_failure_line(execution) for execution in reversed(history)))
        state["checks"][name] = _resolved_up_to(instance, history, seen)
    context.update_cursor(json.dumps(state))
    if not lines:
        return dg.SkipReason("no new failures")
    send_alert(f"{len(lines)} failure(s) in the importer", lines, context.log)
    return None


@dg.sensor(
    minimum_interval_seconds=900,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every quarter hour, even when no import runs: records the latest_windows_fresh check and "
    "alerts once for each window newly overdue (not imported two hours after it closed).",
)
def freshness_sensor(context: dg.SensorEvaluationContext, storage: ImporterStorage) -> dg.SensorResult:
    """The first evaluation after the sensor starts records the check without alerting: lists the
    discovery sensor registers at the same moment have their history runs queued, not yet done."""
    now, history = datetime.now(timezone.utc), storage.history()
    verdicts = [freshness(group, active_lists(context.instance, group, storage), history, now) for group in GROUPS]
    events = [verdict.evaluation() for verdict in verdicts]
    overdue = [key for verdict in verdicts for key in verdict.overdue]
    if context.cursor is None:
        return dg.SensorResult(asset_events=events, cursor="[]")
    alerted = set(json.loads(context.cursor))
    newly_overdue = [key for key in overdue if key not in alerted]
    if newly_overdue:
        send_alert(
            f"{len(newly_overdue)} window(s) not imported two hours after they closed",
            [str(decode_partition_key(key)) for key in newly_overdue],
            context.log,
        )
    return dg.SensorResult(asset_events=events, cursor=json.dumps(overdue))
