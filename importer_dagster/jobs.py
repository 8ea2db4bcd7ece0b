import dagster as dg

from importer_dagster.assets import import_assets
from importer_dagster.partitions import list_windows_partitions

import_contacts_job = dg.define_asset_job(
    "import_contacts_job",
    selection=dg.AssetSelection.assets(*import_assets),
    partitions_def=list_windows_partitions,
    description="Fetch, transform and export one list's window (or a range of them) end to end.",
)
