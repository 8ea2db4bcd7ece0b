"""`importer-dagster`: the operator's commands around the Dagster code location.

Every command turns a user's mistake into one line on stderr and a non-zero exit, never a
traceback: the people running this are operators, not the authors.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import threading
import uuid
from datetime import date, datetime, timedelta, timezone
from collections.abc import Callable
from pathlib import Path

from importer_dagster.accounts import ConfigError
from importer_dagster.simulators.server import Request, Response, SimulatorServer

DEMO_DIR = Path(".demo")
DEMO_MAILCHIMP_PORT = 8765
DEMO_CONTACTS_PORT = 8766
DEMO_ALERTS_PORT = 8767


class UsageError(Exception):
    """A mistake on the command line or in the environment, reported in one line."""


def _instance():
    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        raise UsageError("DAGSTER_HOME is not set: point it at the Dagster instance to register lists in")
    return dg.DagsterInstance.get()


def cmd_discover(args: argparse.Namespace) -> int:
    from importer_dagster.accounts import current_accounts
    from importer_dagster.discovery import discover_lists
    from importer_dagster.partitions import LISTS_PARTITIONS_NAME
    from importer_dagster.resources import MailchimpResource

    accounts = current_accounts().accounts
    if args.account:
        accounts = [account for account in accounts if account.id in set(args.account)]
        if not accounts:
            raise UsageError(f"no account named {', '.join(args.account)} in the accounts file")
    instance = _instance()
    discovery = discover_lists(accounts, MailchimpResource(), f"discover-{uuid.uuid4()}")
    known = set(instance.get_dynamic_partitions(LISTS_PARTITIONS_NAME))
    added = [key for key in discovery.keys if key not in known]
    if added:
        instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, added)
    for key in added:
        print(f"added {key}")
    print(f"{len(added)} list(s) added, {len(discovery.keys) - len(added)} already registered")
    for reason in discovery.errors.values():
        print(f"error: {reason}", file=sys.stderr)
    return 1 if discovery.errors else 0


def cmd_backfill_failed(args: argparse.Namespace) -> int:
    """A Dagster backfill (not loose runs), so it shows on the UI's Backfills page and the daemon paces it."""
    import time

    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    from importer_dagster.alerts import UI_URL_ENV
    from importer_dagster.assets import import_specs
    from importer_dagster.definitions import defs
    from importer_dagster.partition_status import failed_partitions

    if args.since:
        try:
            since = date.fromisoformat(args.since).strftime("%Y-%m-%d-00:00")
        except ValueError:
            raise UsageError(f"--since {args.since!r} is not a date of the form YYYY-MM-DD") from None
    instance = _instance()
    failed = [
        key
        for key in failed_partitions(instance)
        if (not args.account or key.startswith(f"{args.account}."))
        and (not args.since or key.split("|", 1)[1] >= since)
    ]
    if not failed:
        print("no failed partitions to backfill")
        return 0
    backfill_id = make_new_backfill_id()
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id,
        asset_graph=defs.resolve_asset_graph(),
        partition_names=failed,
        asset_selection=[spec.key for spec in import_specs],
        backfill_timestamp=time.time(),
        tags={"importer/backfill": "failed"},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=f"Failed windows ({len(failed)})",
        description="Launched by importer-dagster backfill-failed",
        run_config=None,
    )
    instance.add_backfill(backfill)
    for key in failed:
        print(f"backfilling {key}")
    base = os.environ.get(UI_URL_ENV, "http://127.0.0.1:3000").rstrip("/")
    print(f"launched backfill {backfill_id} of {len(failed)} failed window(s): {base}/runs/b/{backfill_id}")
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from importer_dagster.resources import ImporterStorage

    if args.replay:
        return _replay(args)
    rows = ImporterStorage().dead_letters().rows(
        account=args.account,
        list_key=args.list,
        window=args.window,
        include_resolved=args.all,
        limit=args.limit,
    )
    for row in rows:
        state = f"resolved by {row.resolved_run_id}" if row.resolved_run_id else "open"
        print(
            f"{row.list_key}|{row.window}\t{row.stage}\t{row.member_id}\t{row.reason}\t"
            f"run {row.run_id}\t{state}"
        )
    print(f"{len(rows)} dead letter(s)", file=sys.stderr)
    return 0


def _replay(args: argparse.Namespace) -> int:
    """A new run of replay_dead_letters_job, recorded in the instance like any other."""
    from importer_dagster.definitions import defs

    config = {"account": args.account, "list_key": args.list, "window": args.window}
    result = defs.get_job_def("replay_dead_letters_job").execute_in_process(
        run_config={"ops": {"replay_open_dead_letters": {"config": config}}},
        instance=_instance(),
        raise_on_error=False,
    )
    for event in result.get_asset_materialization_events():
        metadata = {key: value.value for key, value in event.materialization.metadata.items()}
        print(f"{event.materialization.partition}\treplayed {metadata['replayed']}, exported {metadata['exported']}, "
              f"still dead {metadata['still_dead']}")
    if not result.success:
        failure = next(event for event in result.all_events if event.is_step_failure)
        raise UsageError(f"replay run {result.run_id} failed: {failure.step_failure_data.error.message.strip()}")
    print(f"replay run {result.run_id} succeeded")
    return 0


def cmd_simulate_mailchimp(args: argparse.Namespace) -> int:
    from importer_dagster.simulators.mailchimp import serve

    serve(args.simulator_args)
    return 0


def cmd_simulate_contacts(args: argparse.Namespace) -> int:
    from importer_dagster.simulators.contacts import serve

    serve(args.simulator_args)
    return 0


def demo_environment(root: Path, mailchimp_url: str, contacts_url: str, webhook_url: str) -> dict[str, str]:
    from importer_dagster.simulators.contacts import DEMO_API_KEY
    from importer_dagster.simulators.mailchimp import DEMO_KEYS

    start = (datetime.now(timezone.utc) - timedelta(days=2)).strftime("%Y-%m-%d")
    return {
        "DAGSTER_HOME": str(root / "dagster_home"),
        "IMPORTER_STATE_DIR": str(root / "state"),
        "IMPORTER_START_DATE": start,
        "IMPORTER_RETRY_COOLDOWN_S": "30",
        "IMPORTER_MAX_AUTO_RETRIES": "2",
        "MAILCHIMP_BASE_URL": mailchimp_url,
        "CONTACTS_API_URL": contacts_url,
        "CONTACTS_API_KEY": DEMO_API_KEY,
        "ALERT_WEBHOOK_URL": webhook_url,
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
        env = demo_environment(root, mailchimp.base_url, contacts.base_url, f"{alerts.root_url}/alerts")
        Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        (Path(env["DAGSTER_HOME"]) / "dagster.yaml").touch()
        os.environ.update(env)
        (root / "env.sh").write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="importer-dagster",
        description="Operate the Mailchimp → Contacts API importer (a Dagster code location).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    discover = add("discover", cmd_discover, "Register every account's Mailchimp lists as partitions in $DAGSTER_HOME.")
    discover.add_argument("--account", action="append", help="only this account (repeatable)")

    backfill = add(
        "backfill-failed", cmd_backfill_failed, "Launch a Dagster backfill of every failed window (needs the daemon)."
    )
    backfill.add_argument("--account", help="only this account's lists")
    backfill.add_argument("--since", help="only windows from this UTC date on (YYYY-MM-DD)")

    letters = add("dead-letters", cmd_dead_letters, "List contacts that could not be imported, with the reason.")
    letters.add_argument("--account", help="only this account's lists")
    letters.add_argument("--list", help="list partition key, e.g. acme.1a2d7ebf82")
    letters.add_argument("--window", help="window key, e.g. 2026-11-20-03:00")
    letters.add_argument("--all", action="store_true", help="include dead letters resolved by a later run")
    letters.add_argument("--limit", type=int, help="show at most this many, oldest first")
    letters.add_argument("--replay", action="store_true", help="send the open ones again, in a new run")

    demo = add("demo", cmd_demo, "Start the simulators and `dagster dev`; the sensors register and import the demo lists.")
    demo.add_argument("--port", type=int, default=3000, help="Dagster UI port (default 3000)")
    demo.add_argument("--mailchimp-port", type=int, default=DEMO_MAILCHIMP_PORT,
                      help=f"Mailchimp simulator port (default {DEMO_MAILCHIMP_PORT})")
    demo.add_argument("--contacts-port", type=int, default=DEMO_CONTACTS_PORT,
                      help=f"Contacts API simulator port (default {DEMO_CONTACTS_PORT})")
    demo.add_argument("--alerts-port", type=int, default=DEMO_ALERTS_PORT,
                      help=f"port of the receiver that prints alerts (default {DEMO_ALERTS_PORT})")
    demo.add_argument("--no-dagster", action="store_true", help="run the simulators only")

    for name, handler, what in (
        ("simulate-mailchimp", cmd_simulate_mailchimp, "Run the Mailchimp API simulator (see --help after the command)."),
        ("simulate-contacts", cmd_simulate_contacts, "Run the Contacts API simulator (see --help after the command)."),
    ):
        commands.add_parser(name, help=what, description=what, add_help=False).set_defaults(
            handler=handler, takes_simulator_args=True
        )
    return parser


def main(argv: list[str] | None = None) -> None:
    from importer_dagster.http import HttpError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "takes_simulator_args", False):
        args.simulator_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        sys.exit(args.handler(args))
    except (ConfigError, UsageError, HttpError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
