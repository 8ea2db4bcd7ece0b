"""Alerts: one message per incident, to a Slack-compatible webhook and always to the log.

Callers group what they found in one evaluation (500 failed lists make one message listing
them), because a flood of identical messages hides the incident it reports.
"""

import logging
from collections.abc import Sequence

import requests

from importer_dagster.core import settings

MAX_LINES = 40

logger = logging.getLogger("importer_dagster.alerts")


def run_link(run_id: str) -> str:
    return f"{ui_url()}/runs/{run_id}"


def ui_url() -> str:
    return settings.UI_URL.get().rstrip("/")


def format_alert(title: str, lines: Sequence[str]) -> str:
    shown = [f"• {line}" for line in lines[:MAX_LINES]]
    if len(lines) > MAX_LINES:
        shown.append(f"… and {len(lines) - MAX_LINES} more")
    return "\n".join([f"[importer_dagster] {title}", *shown])


def send_alert(title: str, lines: Sequence[str], log: logging.Logger = logger) -> str:
    text = format_alert(title, lines)
    log.error(text)
    url = settings.ALERT_WEBHOOK_URL.get()
    if url:
        try:
            requests.post(url, json={"text": text}, timeout=10).raise_for_status()
        except requests.RequestException as error:
            log.error(f"alert webhook failed ({type(error).__name__}); the alert above is in the log only")
    return text
