"""`importer-dagster`: the operator's commands around the Dagster code location.

Every command turns a user's mistake into one line on stderr and exit status 2, never a
traceback: the people running this are operators, not the authors. An API's refusal is exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from importer_dagster.cli.common import EXIT_FAILED, EXIT_MISTAKE, UsageError
from importer_dagster.cli.config import cmd_settings
from importer_dagster.cli.dead_letters import cmd_dead_letters
from importer_dagster.cli.demo import (
    DEMO_ALERTS_PORT,
    DEMO_CONTACTS_PORT,
    DEMO_MAILCHIMP_PORT,
    cmd_demo,
    cmd_simulate_contacts,
    cmd_simulate_mailchimp,
)
from importer_dagster.cli.lists import cmd_backfill_failed, cmd_discover, cmd_history, cmd_resync, cmd_upgrade
from importer_dagster.cli.worker import cmd_worker
from importer_dagster.core.settings import ConfigError


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

    history = add("history", cmd_history, "Show every import of one list's windows: status and counts, however old.")
    history.add_argument("--list", required=True, help="list partition key, e.g. acme.1a2d7ebf82")
    history.add_argument("--since", help="from this UTC date on (YYYY-MM-DD)")
    history.add_argument("--until", help="up to this UTC date, included (YYYY-MM-DD)")

    resync = add("resync", cmd_resync, "Import one list's days older than the horizon again, in a new run.")
    resync.add_argument("--list", required=True, help="list partition key, e.g. acme.1a2d7ebf82")
    resync.add_argument("--from", dest="first", required=True, help="the first UTC day (YYYY-MM-DD)")
    resync.add_argument("--to", dest="last", required=True, help="the last UTC day, included (YYYY-MM-DD)")
    resync.add_argument("--changed-only", action="store_true",
                        help="send only what change detection finds changed (default: every record)")

    add("upgrade", cmd_upgrade, "Move an instance from the layout before list groups: lists into groups, windows "
        "into the history.")

    letters = add("dead-letters", cmd_dead_letters, "List contacts that could not be imported, with the reason.")
    letters.add_argument("--account", help="only this account's lists")
    letters.add_argument("--list", help="list partition key, e.g. acme.1a2d7ebf82")
    letters.add_argument("--window", help="window key, e.g. 2026-11-20-03:00")
    letters.add_argument("--all", action="store_true", help="include dead letters resolved by a later run")
    letters.add_argument("--limit", type=int, help="show at most this many, oldest first")
    letters.add_argument("--replay", action="store_true", help="send the open ones again, in a new run")

    add("settings", cmd_settings, "Show every setting's value now and what it accepts; exit 2 if one is invalid.")

    _add_services(add, commands)
    return parser


def _add_services(add: Callable[..., argparse.ArgumentParser], commands) -> None:
    """The commands that run for as long as they are needed: the demo, a worker, the simulators."""
    worker = add("worker", cmd_worker, "Run import steps on this host for the daemon's runs: a Celery worker on "
                 "IMPORTER_CELERY_BROKER_URL.")
    worker.add_argument("--concurrency", type=int, default=os.cpu_count() or 1,
                        help="steps at once (default: this host's cores)")
    worker.add_argument("--name", help="the worker's name, shown in each run's log (default: importer)")
    worker.add_argument("--queue", action="append", default=[],
                        help="a queue of its own to listen on as well as 'dagster' (repeatable)")
    worker.add_argument("--loglevel", default="INFO", help="Celery's log level (default INFO)")

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


def main(argv: list[str] | None = None) -> None:
    from importer_dagster.core.http import HttpError

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
        sys.exit(EXIT_FAILED if isinstance(error, HttpError) else EXIT_MISTAKE)
