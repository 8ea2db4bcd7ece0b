"""The commands about lists and their windows: discover, backfill-failed, history, resync, upgrade."""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import date, datetime, timezone
from functools import partial

from importer_dagster.cli.common import EXIT_FAILED, EXIT_MISTAKE, UsageError, instance, run_job


def cmd_discover(args: argparse.Namespace) -> int:
    from importer_dagster.core.accounts import current_accounts
    from importer_dagster.core.discovery import discover_lists
    from importer_dagster.partitions import GROUP_CAPACITY, assign_groups, registered_lists
    from importer_dagster.resources import MailchimpResource

    accounts = current_accounts().accounts
    if args.account:
        accounts = [account for account in accounts if account.id in set(args.account)]
        if not accounts:
            raise UsageError(f"no account named {', '.join(args.account)} in the accounts file")
    dagster = instance()
    discovery = discover_lists(accounts, partial(MailchimpResource().client, correlation_id=f"discover-{uuid.uuid4()}"))
    registered = registered_lists(dagster)
    assigned, unplaced = assign_groups([key for key in discovery.keys if key not in registered], registered)
    for group, keys in assigned.items():
        dagster.add_dynamic_partitions(group.lists_partitions.name, keys)
        for key in keys:
            print(f"added {key} to {group.name}")
    added = sum(len(keys) for keys in assigned.values())
    print(f"{added} list(s) added, {len(discovery.keys) - added - len(unplaced)} already registered")
    for reason in discovery.errors.values():
        print(f"error: {reason}", file=sys.stderr)
    for key in unplaced:
        print(f"error: {key} not registered: every list group holds {GROUP_CAPACITY} lists; raise "
              "IMPORTER_LIST_GROUPS", file=sys.stderr)
    if discovery.misconfigured or unplaced:
        return EXIT_MISTAKE
    return EXIT_FAILED if discovery.errors else 0


def _day(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a date of the form YYYY-MM-DD") from None


def cmd_backfill_failed(args: argparse.Namespace) -> int:
    """A Dagster backfill per list group (not loose runs), so it shows on the UI's Backfills page and the
    daemon paces it: every window of the horizon whose latest import failed, in any of its assets."""
    from importer_dagster.core.alerts import ui_url
    from importer_dagster.core.windows import account_of, horizon_start, partition_key, window_key_at
    from importer_dagster.dagster_internals import launch_asset_backfill
    from importer_dagster.definitions import defs
    from importer_dagster.partitions import registered_lists
    from importer_dagster.resources import ImporterStorage

    since = _day(args.since, "--since")
    dagster = instance()
    first = max(window_key_at(horizon_start(datetime.now(timezone.utc))), f"{since}-00:00" if since else "")
    groups = registered_lists(dagster)
    failed = [
        record for record in ImporterStorage().history().failed_since(first)
        if record.list_key in groups and (not args.account or account_of(record.list_key) == args.account)
    ]
    if not failed:
        print("no failed partitions to backfill")
        return 0
    for group in dict.fromkeys(groups[record.list_key] for record in failed):
        keys = [partition_key(r.list_key, r.window) for r in failed if groups[r.list_key] is group]
        backfill_id = launch_asset_backfill(
            dagster, defs, keys, list(group.asset_keys.values()), title=f"Failed windows of {group.name} ({len(keys)})",
            description="Launched by importer-dagster backfill-failed", tags={"importer/backfill": "failed"},
        )
        for key in keys:
            print(f"backfilling {key}")
        print(f"launched backfill {backfill_id} of {len(keys)} failed window(s): {ui_url()}/runs/b/{backfill_id}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """Every import of one list's windows: the horizon from the state database, older days from their files."""
    from importer_dagster.core.windows import split_list_key
    from importer_dagster.resources import ImporterStorage

    split_list_key(args.list)
    first = f"{_day(args.since, '--since') or '0000-00-00'}-00:00"
    last = f"{_day(args.until, '--until') or '9999-12-31'}-23:00"
    storage = ImporterStorage()
    records = {r.window: r for r in storage.history_files().records(args.list, first, last)}
    records |= {r.window: r for r in storage.history().records(args.list, first, last)}
    print("window\tstatus\tfetched\texported\tskipped\trejected\tdead_lettered\tattempts\trun\treason")
    for window in sorted(records):
        r = records[window]
        counts = "\t".join("" if value is None else str(value)
                           for value in (r.fetched, r.exported, r.skipped, r.rejected, r.dead_lettered))
        print(f"{window}\t{r.status}\t{counts}\t{r.attempts}\t{r.run_id}\t{r.reason or ''}")
    print(f"{len(records)} window(s)", file=sys.stderr)
    return 0


def cmd_resync(args: argparse.Namespace) -> int:
    """A run of resync_job: windows older than the horizon, imported again and folded into their history."""
    from importer_dagster.core.accounts import current_accounts

    current_accounts()
    first, last = (f"{_day(value, option)}-{hour}" for value, option, hour in
                   ((args.first, "--from", "00:00"), (args.last, "--to", "23:00")))
    config = {"list_key": args.list, "first": first, "last": last, "force_export": not args.changed_only}
    result = run_job("resync_job", "resync_windows", config)
    if result is None:
        return EXIT_FAILED
    for event in result.get_asset_materialization_events():
        print(f"{event.materialization.partition}\thistory updated")
    print(f"resync run {result.run_id} succeeded")
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    """From the layout before list groups: its lists join the groups, its windows the history."""
    from importer_dagster.resources import ImporterStorage
    from importer_dagster.upgrade import upgrade

    report = upgrade(instance(), ImporterStorage())
    print(f"{report.lists} list(s) moved into list groups, {report.windows} window(s) recorded in the history "
          f"({report.failed} of them failed)")
    return 0
