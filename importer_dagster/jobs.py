import dagster as dg

from importer_dagster.assets import import_assets

import_contacts_job = dg.define_asset_job(
    "import_contacts_job",
    selection=dg.AssetSelection.assets(*import_assets),
    description="Fetch, transform and export one list's window (or a range of them) end to end.",
)
