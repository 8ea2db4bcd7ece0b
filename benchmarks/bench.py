"""Benchmarks: figures printed as a table and written as JSON. Never asserted by tests.

    python benchmarks/bench.py full-sync [--members 1000000] [--latency-ms 0 250] [--state-db sqlite postgres]
    python benchmarks/bench.py hourly-tick [--accounts 10] [--lists-per-account 100]
    python benchmarks/bench.py partition-scale [--lists 5000] [--accounts 500] [--days 365] [--groups 16]
    python benchmarks/bench.py scale-out [--workers 1 2]
    python benchmarks/bench.py stages [--members 30000]

Everything runs on 127.0.0.1. The simulators run in their own processes, and the import runs in
its own process through `dagster asset materialize`, so each peak RSS is the importer's alone.
"""

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from common import machine
from full_sync import STATE_DATABASES, full_sync
from hourly_tick import hourly_tick
from partition_scale import partition_scale
from scale_out import scale_out
from stages import stages


def table(rows: list[dict]) -> str:
    """One column per figure; a single row of many figures reads better as one figure per line."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if len(rows) == 1 and len(columns) > 12:
        width = max(map(len, columns))
        return "\n".join(f"{column.ljust(width)}  {rows[0][column]}" for column in columns)
    widths = {c: max(len(c), *(len(str(row.get(c, ""))) for row in rows)) for c in columns}
    lines = [" | ".join(c.ljust(widths[c]) for c in columns), "-+-".join("-" * widths[c] for c in columns)]
    lines += [" | ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["full-sync", "hourly-tick", "partition-scale", "scale-out", "stages"])
    parser.add_argument("--accounts", type=int, help="how many client accounts the lists belong to "
                        "(hourly-tick: 10; partition-scale: 500)")
    parser.add_argument("--lists-per-account", type=int, default=100)
    parser.add_argument("--members", type=int, help="full-sync: 1,000,000; stages: 30,000")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0, 250])
    parser.add_argument("--state-db", nargs="+", choices=STATE_DATABASES, default=list(STATE_DATABASES),
                        help="full-sync: the importer's state database (PostgreSQL: Dagster's storage too, as deployed)")
    parser.add_argument("--lists", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365, help="how long the importer has run")
    parser.add_argument("--groups", type=int, default=16, help="IMPORTER_LIST_GROUPS")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="scale-out: Celery workers to compare")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results.json"))
    parser.add_argument("--profile", type=Path, help="profile into this folder: the importer with py-spy (full-sync); the sensors with cProfile (partition-scale)")
    args = parser.parse_args()
    if args.what == "full-sync":
        rows = [row for latency in args.latency_ms for row in full_sync(args.members or 1_000_000, latency, args.state_db, args.profile)]
    elif args.what == "hourly-tick":
        rows = [hourly_tick(args.accounts or 10, args.lists_per_account, args.groups)]
    elif args.what == "partition-scale":
        rows = [partition_scale(args.lists, args.accounts or 500, args.days, args.groups, args.profile)]
    elif args.what == "scale-out":
        rows = scale_out(args.workers)
    else:
        rows = stages(args.members or 30_000)
    print(f"machine: {machine()}")
    print(table(rows))
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    results[args.what] = {"machine": machine(), "measured_at": datetime.now(timezone.utc).isoformat(), "rows": rows}
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
