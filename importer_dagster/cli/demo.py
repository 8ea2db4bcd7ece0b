"""`importer-dagster demo` and the simulators: everything on 127.0.0.1, no credentials."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from importer_dagster.core import settings
from importer_dagster.simulators.server import Request, Response, SimulatorServer

DEMO_DIR = Path(".demo")
DEMO_MAILCHIMP_PORT = 8765
DEMO_CONTACTS_PORT = 8766
DEMO_ALERTS_PORT = 8767


def cmd_simulate_mailchimp(args: argparse.Namespace) -> int:
    from importer_dagster.simulators.mailchimp import serve

    serve(args.simulator_args)
    return 0


def cmd_simulate_contacts(args: argparse.Namespace) -> int:
    from importer_dagster.simulators.contacts import serve

    serve(args.simulator_args)
    return 0


def demo_environment(root: Path, mailchimp_url: str, contacts_url: str, webhook_url: str) -> dict[str, str]:
    """Everything the demo sets, the accounts file included: nothing falls back to the demo by itself."""
    from importer_dagster.core.accounts import DEMO_ACCOUNTS_FILE
    from importer_dagster.simulators.contacts import DEMO_API_KEY
    from importer_dagster.simulators.mailchimp import DEMO_KEYS

    start = (datetime.now(timezone.utc) - timedelta(days=2)).strftime("%Y-%m-%d")
    return {
        settings.DAGSTER_HOME.name: str(root / "dagster_home"),
        settings.ACCOUNTS_FILE.name: str(DEMO_ACCOUNTS_FILE),
        settings.STATE_DIR.name: str(root / "state"),
        settings.START_DATE.name: start,
        settings.RETRY_COOLDOWN_S.name: "30",
        settings.MAX_AUTO_RETRIES.name: "2",
        settings.MAILCHIMP_BASE_URL.name: f"{mailchimp_url}/3.0",
        "MAILCHIMP_SIMULATOR_URL": mailchimp_url,
        "CONTACTS_SIMULATOR_URL": contacts_url,
        settings.CONTACTS_API_URL.name: contacts_url,
        settings.CONTACTS_API_KEY_ENV: DEMO_API_KEY,
        settings.ALERT_WEBHOOK_URL.name: webhook_url,
        **DEMO_KEYS,
    }


def _print_alerts(request: Request) -> Response:
    """The demo's stand-in for Slack: alerts appear in the terminal that runs the demo."""
    print(f"\n=== ALERT (webhook) ===\n{request.json().get('text', '')}\n", flush=True)
    return Response.json(200, {"ok": True})


def cmd_demo(args: argparse.Namespace) -> int:
    """Simulators and an alert receiver in this process, `dagster dev` as a child: one Ctrl-C stops all.

    Lists are not registered here: the discovery sensor registers them a few seconds after Dagster
    starts and imports each one's history, so the windows fill in by themselves.
    """
    from importer_dagster.simulators.contacts import DEMO_API_KEY, ContactsSimulator
    from importer_dagster.simulators.mailchimp import MailchimpSimulator, demo_world

    root = DEMO_DIR.resolve()
    root.mkdir(exist_ok=True)
    mailchimp = MailchimpSimulator(demo_world(), port=args.mailchimp_port).start()
    contacts = ContactsSimulator(DEMO_API_KEY, db_path=root / "contacts.sqlite3", port=args.contacts_port).start()
    alerts = SimulatorServer(_print_alerts, port=args.alerts_port).start()
    try:
        env = demo_environment(root, mailchimp.root_url, contacts.base_url, f"{alerts.root_url}/alerts")
        dagster_home = Path(env[settings.DAGSTER_HOME.name])
        dagster_home.mkdir(parents=True, exist_ok=True)
        # Dagster's embedded SQLite storage; the terminal shows INFO and the alerts, not DEBUG events.
        (dagster_home / "dagster.yaml").write_text("python_logs:\n  python_log_level: INFO\ntelemetry:\n  enabled: false\n")
        os.environ.update(env)
        (root / "env.sh").write_text(
            "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
            + f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"\n'
        )
        print(f"Mailchimp simulator:    {mailchimp.base_url}")
        print(f"Contacts API simulator: {contacts.base_url}")
        print(f"Alerts are printed here (webhook {alerts.root_url}/alerts)")
        print(f"In another shell, `source {root / 'env.sh'}` to use the CLI against this demo.")
        if args.no_dagster:
            print("Simulators running; Ctrl-C stops them.")
            threading.Event().wait()
            return 0
        print(f"Dagster UI: http://127.0.0.1:{args.port} (the discovery sensor registers the lists within a minute)")
        command = [str(Path(sys.executable).parent / "dagster"), "dev", "-m", "importer_dagster.definitions", "-h", "127.0.0.1", "-p", str(args.port)]
        return subprocess.call(command, env={**os.environ, **env})
    except KeyboardInterrupt:
        return 0
    finally:
        mailchimp.stop()
        contacts.stop()
        alerts.stop()
