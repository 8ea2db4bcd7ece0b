"""Dagster instances, test and PostgreSQL-backed, on top of the simulators in `fixtures`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from importer_dagster.assets import import_assets
from importer_dagster.core.stages import Stage
from importer_dagster.dagster_internals import set_defs_state_storage
from importer_dagster.io_manager import WINDOW_FILES_IO_MANAGER, WindowFilesIOManager
from importer_dagster.partitions import GROUPS
from importer_dagster.resources import ContactsApiResource, ImporterStorage, MailchimpResource
from importer_dagster.throwaway_instance import throwaway_dagster_home

from .fixtures import (  # noqa: F401  (fixtures are found by name)
    ACCOUNTS_YAML,
    ACME_KEY,
    ACME_LIST,
    ACME_SMALL_LIST,
    CONTACTS_KEY,
    GLOBEX_KEY,
    GLOBEX_LIST,
    NOW,
    REPO,
    WebhookReceiver,
    build_world,
    contacts_sim,
    free_ports,
    importer_env,
    last_closed_window,
    mailchimp_sim,
    object_store,
    s3_url,
    webhook,
    window_key,
)

REGISTERED_LISTS = [f"acme.{ACME_LIST}", f"acme.{ACME_SMALL_LIST}", f"globex.{GLOBEX_LIST}"]
GROUP = GROUPS[0]
"""The tests run with one list group, the default: every list is one of its partitions."""
LISTS_PARTITIONS_NAME = GROUP.lists_partitions.name
IMPORT_ASSETS = [import_assets[GROUP.number]]
IMPORT_JOB = GROUP.job_name
PARTITIONS = GROUP.partitions


def asset_key(name: str) -> dg.AssetKey:
    """One of the group's assets, by its stage name (`exported_batches`)."""
    return GROUP.asset_keys[Stage(name)]


@pytest.fixture(autouse=True)
def fresh_definitions_state_context():
    """Give each test Dagster's definitions-state context as it found it.

    Dagster keeps the current instance's definitions-state storage in a ContextVar, and evaluating
    a schedule or sensor against a test instance can leave it set; once that instance is gone,
    the next Definitions to load fails with "undefined DagsterInstance weakref".
    """
    with set_defs_state_storage(None):
        yield


@pytest.fixture
def postgres_home(tmp_path):
    """A fresh PostgreSQL database behind the deployment's deploy/dagster.yaml, dropped afterwards."""
    with throwaway_dagster_home(tmp_path, REPO / "deploy" / "dagster.yaml") as home_and_environment:
        yield home_and_environment


@pytest.fixture
def postgres_instance(postgres_home, importer_env, monkeypatch):
    home, environment = postgres_home
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as pg_instance:
        pg_instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, REGISTERED_LISTS)
        yield pg_instance


@pytest.fixture
def instance(importer_env):
    with dg.instance_for_test() as test_instance:
        test_instance.add_dynamic_partitions(LISTS_PARTITIONS_NAME, REGISTERED_LISTS)
        yield test_instance


def fast_resources(state_dir: Path | str, contacts_url: str, **mailchimp_overrides) -> dict[str, dg.ConfigurableResource]:
    """Production resources with short backoffs, so retry paths take milliseconds in tests."""
    storage = ImporterStorage(state_dir=str(state_dir))
    return {
        "mailchimp": MailchimpResource(retry_backoff_s=0.01, state_dir=str(state_dir), **mailchimp_overrides),
        "contacts_api": ContactsApiResource(base_url=contacts_url, retry_backoff_s=0.01),
        "storage": storage,
        WINDOW_FILES_IO_MANAGER: WindowFilesIOManager(storage=storage),
    }


@dataclass
class Importer:
    instance: dg.DagsterInstance
    resources: dict
    storage: ImporterStorage

    def materialize(
        self, partition_key: str | None, raise_on_error: bool = True, tags: dict | None = None,
        selection: list[str] | None = None,
    ):
        return dg.materialize(
            IMPORT_ASSETS,
            partition_key=partition_key,
            instance=self.instance,
            resources=self.resources,
            raise_on_error=raise_on_error,
            tags=tags,
            selection=[asset_key(name) for name in selection] if selection else None,
        )


@pytest.fixture
def importer(instance, importer_env, contacts_sim) -> Importer:
    resources = fast_resources(importer_env["IMPORTER_STATE_DIR"], contacts_sim.base_url)
    return Importer(instance, resources, resources["storage"])
