from setuptools import find_packages, setup

setup(
    name="importer_dagster",
    version="0.1.0",
    description="Hourly Mailchimp → Contacts API importer on Dagster",
    packages=find_packages(exclude=["importer_dagster_tests"]),
    package_data={"importer_dagster": ["demo/*.yaml"]},
    python_requires=">=3.10",
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-postgres==0.29.27",
        # dagster-postgres 0.29.27 breaks on SQLAlchemy 2.1 (it switches to psycopg 3).
        "sqlalchemy<2.1",
        "requests",
        # Faster JSON for Mailchimp pages and batch bodies, with sorted keys for idempotency keys.
        "orjson",
        "numpy",
        # DogStatsD client (Datadog's own): tagged counters and timings over UDP, for dashboards.
        "datadog",
        # The chunked window files are Parquet, written and read column-wise.
        "pyarrow",
        "pydantic>=2",
        "pyyaml",
    ],
    extras_require={
        "test": [
            "pytest",
            # The official client is the peer that proves the simulator speaks Mailchimp.
            "mailchimp-marketing",
            # Drives Debian's Chromium through Dagster's UI in the browser test.
            "playwright",
        ],
    },
    entry_points={
        "console_scripts": [
            "importer-dagster=importer_dagster.cli:main",
        ],
    },
)
