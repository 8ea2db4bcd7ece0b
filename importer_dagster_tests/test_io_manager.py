"""A window's data as pandas: `load_asset_value`, a user's downstream asset, and a range of windows."""

from datetime import timedelta

import dagster as dg
import pandas as pd
import pytest

from importer_dagster.core.windows import FIRST_WINDOW_START, window_key_at
from importer_dagster.definitions import defs
from importer_dagster.partitions import range_tags
from importer_dagster.simulators.mailchimp import MailchimpSimulator

from .conftest import (
    ACME_LIST,
    GROUP,
    IMPORT_ASSETS,
    NOW,
    PARTITIONS,
    Importer,
    asset_key,
    build_world,
    fast_resources,
    last_closed_window,
)
from .test_assets import expected_ids, materialization_metadata

KEY = f"acme.{ACME_LIST}|{last_closed_window()}"


def test_each_asset_loads_as_a_dataframe_with_the_counts_its_metadata_gives(importer: Importer, mailchimp_sim):
    result = importer.materialize(KEY)

    source = defs.load_asset_value(asset_key("mailchimp_contacts"), partition_key=KEY, instance=importer.instance)
    records = defs.load_asset_value(asset_key("contact_records"), partition_key=KEY, instance=importer.instance)
    batches = defs.load_asset_value(asset_key("exported_batches"), partition_key=KEY, instance=importer.instance)

    metadata = materialization_metadata(result, "exported_batches")
    assert isinstance(records, pd.DataFrame)
    assert len(source) == metadata["fetched"] and len(records) == metadata["transformed"] > 0
    assert set(records["external_id"].str.split(":").str[1]) == expected_ids(mailchimp_sim, ACME_LIST, last_closed_window())
    assert list(batches.columns)[:3] == ["batch", "idempotency_key", "records"]
    assert batches["records"].sum() == metadata["exported"] and len(batches) == metadata["batches"]


def test_materializations_carry_row_count_schema_and_path_never_rows(importer: Importer):
    result = importer.materialize(KEY)

    for asset in ("mailchimp_contacts", "contact_records", "exported_batches"):
        [event] = [e.materialization for e in result.get_asset_materialization_events()
                   if e.asset_key == asset_key(asset)]
        assert isinstance(event.metadata["dagster/row_count"].value, int)
        assert isinstance(event.metadata["dagster/column_schema"].value, dg.TableSchema)
        path = event.metadata["path"].value
        assert path.endswith(f"/{asset}/acme.{ACME_LIST}/{last_closed_window()}")
        assert len(pd.read_parquet(path)) == event.metadata["dagster/row_count"].value
        assert not any("@" in str(value.value) for value in event.metadata.values()), "no email in metadata"
    schema = next(e.materialization for e in result.get_asset_materialization_events()
                  if e.asset_key == asset_key("contact_records")).metadata["dagster/column_schema"].value
    assert [column.name for column in schema.columns][:3] == ["external_id", "email", "first_name"]


def test_a_users_downstream_asset_takes_a_window_as_a_dataframe(importer: Importer):
    importer.materialize(KEY)

    @dg.asset(partitions_def=PARTITIONS, ins={"contact_records": dg.AssetIn(asset_key("contact_records"))})
    def statuses(contact_records: pd.DataFrame) -> dict:
        return contact_records.groupby("status").size().to_dict()

    result = dg.materialize([*IMPORT_ASSETS, statuses], selection=[statuses], partition_key=KEY,
                            instance=importer.instance, resources=importer.resources)

    counts = result.output_for_node("statuses")
    assert sum(counts.values()) == len(defs.load_asset_value(asset_key("contact_records"), partition_key=KEY, instance=importer.instance))
    assert set(counts) <= {"subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived"}


@pytest.fixture
def a_full_day(importer: Importer, contacts_sim):
    """Yesterday, every hour of it imported, from a world whose changes span two days."""
    with MailchimpSimulator(build_world(history_hours=48)) as simulator:
        importer.resources["mailchimp"] = fast_resources(
            importer.storage.state_dir, contacts_sim.base_url, base_url=simulator.base_url
        )["mailchimp"]
        day = (NOW - timedelta(days=1)).replace(hour=0, minute=0)
        first, last = window_key_at(day), window_key_at(day + timedelta(hours=23))
        dg.materialize(IMPORT_ASSETS, instance=importer.instance, resources=importer.resources,
                       tags=range_tags(f"acme.{ACME_LIST}|{first}", f"acme.{ACME_LIST}|{last}"))
        yield simulator, day


def test_a_daily_asset_reads_its_days_24_windows_through_a_partition_mapping(importer: Importer, a_full_day):
    simulator, day = a_full_day
    by_list_and_day = dg.MultiPartitionsDefinition(
        {"list": GROUP.lists_partitions, "window": dg.DailyPartitionsDefinition(start_date=FIRST_WINDOW_START.date().isoformat())}
    )
    each_days_hours = dg.MultiPartitionMapping({
        "list": dg.DimensionPartitionMapping("list", dg.IdentityPartitionMapping()),
        "window": dg.DimensionPartitionMapping("window", dg.TimeWindowPartitionMapping()),
    })

    @dg.asset(partitions_def=by_list_and_day,
              ins={"contact_records": dg.AssetIn(asset_key("contact_records"), partition_mapping=each_days_hours)})
    def daily_contacts(contact_records: pd.DataFrame) -> int:
        return len(contact_records)

    day_key = f"acme.{ACME_LIST}|{day:%Y-%m-%d}"
    result = dg.materialize([*IMPORT_ASSETS, daily_contacts], selection=[daily_contacts], partition_key=day_key,
                            instance=importer.instance, resources=importer.resources)

    changed_that_day = [m for m, at in simulator.members_truth(ACME_LIST).items() if day <= at < day + timedelta(days=1)]
    assert result.output_for_node("daily_contacts") == len(changed_that_day) > 0


def test_windows_on_a_shared_object_store_load_the_same_way(importer: Importer, s3_url, monkeypatch):
    """IMPORTER_FILES_URL on an S3-compatible store: the import writes there, and the IO manager,
    `load_asset_value` and pandas read the window back from there."""
    monkeypatch.setenv("IMPORTER_FILES_URL", s3_url)
    result = importer.materialize(KEY)

    records = defs.load_asset_value(asset_key("contact_records"), partition_key=KEY, instance=importer.instance)

    metadata = materialization_metadata(result, "contact_records")
    path = next(e.materialization for e in result.get_asset_materialization_events()
                if e.asset_key == asset_key("contact_records")).metadata["path"].value
    assert path == f"{s3_url}/windows/contact_records/acme.{ACME_LIST}/{last_closed_window()}"
    assert len(records) == metadata["transformed"] > 0
    assert sorted(pd.read_parquet(path)["external_id"]) == sorted(records["external_id"])
    assert not (importer.storage.root() / "windows").exists(), "nothing written to this host's disk"
