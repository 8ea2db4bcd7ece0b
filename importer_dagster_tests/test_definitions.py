import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from importer_dagster.definitions import defs

REPO = Path(__file__).resolve().parents[1]


def test_definitions_load_and_resolve_the_import_job():
    job = defs.resolve_job_def("import_contacts_job")
    assert {node.name for node in job.graph.node_defs} == {"import_contacts"}
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("exported_batches")).parent_keys == {dg.AssetKey("contact_records")}
    assert graph.get(dg.AssetKey("contact_records")).parent_keys == {dg.AssetKey("mailchimp_contacts")}


def test_every_asset_retries_with_exponential_backoff_and_jitter():
    for assets_def in defs.assets:
        policy = assets_def.op.retry_policy
        assert (policy.max_retries, policy.backoff, policy.jitter) == (3, dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)


def test_dagster_definitions_validate_passes(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m", "importer_dagster.definitions"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "DAGSTER_HOME": str(tmp_path)}, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout


def test_the_deployment_instance_runs_on_postgres(tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
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
