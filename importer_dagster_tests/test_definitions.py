import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml

from importer_dagster.definitions import defs

from .conftest import GROUP, asset_key

REPO = Path(__file__).resolve().parents[1]


def test_definitions_load_and_resolve_the_import_job():
    job = defs.resolve_job_def(GROUP.job_name)
    assert {node.name for node in job.graph.node_defs} == {f"{GROUP.name}_import"}
    graph = defs.resolve_asset_graph()
    assert graph.get(asset_key("exported_batches")).parent_keys == {asset_key("contact_records")}
    assert graph.get(asset_key("contact_records")).parent_keys == {asset_key("mailchimp_contacts")}


def test_dagster_commands_work_from_the_repository_root_with_nothing_set(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m", "importer_dagster.definitions"],
        capture_output=True, text=True, cwd=REPO, env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                                                       "HOME": str(tmp_path)}, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout


def test_the_repositorys_instance_is_sqlite_with_the_deployments_queue_limits_and_retries(tmp_path):
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_retries_enabled and instance.run_monitoring_enabled
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert limits == [{"key": "importer/account", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    deployed = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert set(deployed.pop("storage")) == {"postgres"}
    assert yaml.safe_load((REPO / "dagster.yaml").read_text()) == deployed, "the two differ only in storage"


def test_the_deployment_instance_runs_on_postgres(tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text())
    for name, value in {"DAGSTER_PG_USERNAME": "postgres", "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_HOST": "127.0.0.1",
                        "DAGSTER_PG_DB": "test", "DAGSTER_PG_PORT": "5432"}.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_retries_enabled and instance.run_monitoring_enabled
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert limits == [{"key": "importer/account", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
