import dagster as dg

from importer_dagster.assets import import_assets
from importer_dagster.checks import freshness_check

import_contacts_job = dg.define_asset_job(
    "import_contacts_job",
    # The freshness check looks across every list on its own schedule; an import run has no use for it.
    selection=dg.AssetSelection.assets(*import_assets) - dg.AssetSelection.checks(freshness_check),
    description="Fetch, transform and export one list's window (or a range of them) end to end.",
)
