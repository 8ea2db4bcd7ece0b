"""`importer-dagster dead-letters`: the contacts that could not be imported, and their replay."""

from __future__ import annotations

import argparse
import sys

from importer_dagster.cli.common import EXIT_FAILED, run_job


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from importer_dagster.core.windows import partition_key
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
        replayed = f", replayed by {row.replay_run_id}" if row.replay_run_id else ""
        print(
            f"{partition_key(row.list_key, row.window)}\t{row.stage}\t{row.member_id}\t{row.reason}\t"
            f"run {row.run_id}{replayed}\t{state}"
        )
    print(f"{len(rows)} dead letter(s)", file=sys.stderr)
    return 0


def _replay(args: argparse.Namespace) -> int:
    """A new run of replay_dead_letters_job, recorded in the instance like any other.

    The accounts file is read first: a mistake there is refused before a run exists.
    """
    from importer_dagster.core.accounts import current_accounts

    current_accounts()
    config = {"account": args.account, "list_key": args.list, "window": args.window}
    result = run_job("replay_dead_letters_job", "replay_open_dead_letters", config)
    if result is None:
        return EXIT_FAILED
    for event in result.get_asset_materialization_events():
        metadata = {key: value.value for key, value in event.materialization.metadata.items()}
        print(f"{metadata['window']}\treplayed {metadata['replayed']}, exported {metadata['exported']}, "
              f"still dead {metadata['still_dead']}")
    print(f"replay run {result.run_id} succeeded")
    return 0
