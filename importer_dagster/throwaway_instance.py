"""A throwaway PostgreSQL database behind a deployment's dagster.yaml, for tests and benchmarks,
and a way to keep its daemon to the run queue.

Both need the deployed storage, and neither may touch a database it did not create. It lives in
the package, not among the tests, so a benchmark can use it without importing the test suite.
"""

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2


@contextmanager
def throwaway_dagster_home(
    parent: Path, instance_yaml: Path, prefix: str = "importer_test"
) -> Iterator[tuple[Path, dict[str, str]]]:
    """(DAGSTER_HOME, the DAGSTER_PG_* variables its dagster.yaml reads); the database is dropped after."""
    database = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {database}")
    home = parent / "dagster_home"
    home.mkdir()
    shutil.copy(instance_yaml, home / "dagster.yaml")
    try:
        yield home, {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_USERNAME": "postgres",
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": "5432",
            "DAGSTER_PG_DB": database,
        }
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()


def stop_automation(environment: dict[str, str], cwd: Path) -> None:
    """Every schedule and sensor of the code location off, with Dagster's own commands, so that a
    daemon on the instance runs only its queue: no tick or discovery imports what a test or a
    benchmark means to measure."""
    from importer_dagster.definitions import defs

    dagster = str(Path(sys.executable).parent / "dagster")
    commands = [["schedule", "stop", schedule.name] for schedule in defs.schedules]
    commands += [["sensor", "stop", sensor.name] for sensor in defs.sensors]
    processes = [subprocess.Popen([dagster, *command, "-m", "importer_dagster.definitions"], cwd=cwd, env=environment,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for command in commands]
    for command, process in zip(commands, processes):
        _, errors = process.communicate(timeout=300)
        if process.returncode:
            raise RuntimeError(f"dagster {' '.join(command)}: {errors[-2000:]}")
