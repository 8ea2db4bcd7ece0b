"""A throwaway PostgreSQL database behind the repository's own dagster.yaml.

Shared by the tests and the benchmarks: both need the deployed storage, and neither may touch a
database it did not create.
"""

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def fresh_dagster_home(parent: Path, prefix: str = "importer_test") -> Iterator[tuple[Path, dict[str, str]]]:
    """(DAGSTER_HOME, the DAGSTER_PG_* variables its dagster.yaml reads); the database is dropped after."""
    database = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {database}")
    home = parent / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
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
