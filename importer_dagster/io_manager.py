"""Reading a window back: each of the import's assets, and the daily history, as a pandas DataFrame.

The import writes its window files itself, as it streams (a window can hold a million contacts, and
no step may hold one whole), so this IO manager only reads. It serves `defs.load_asset_value`, a
user's downstream asset that takes `contact_records: pd.DataFrame`, and ranges of windows or lists
as partition mappings ask for them, concatenated in key order.
"""

import dagster as dg
import pandas as pd
import pyarrow as pa

from importer_dagster.asset_keys import HISTORY_KEY, stage_of
from importer_dagster.core.export import BATCH_SCHEMA
from importer_dagster.core.history import HISTORY_SCHEMA
from importer_dagster.core.stages import Stage
from importer_dagster.core.stream import SOURCE_SCHEMA
from importer_dagster.core.transform import RECORD_SCHEMA
from importer_dagster.core.windows import split_partition_key
from importer_dagster.resources import ImporterStorage

STAGE_SCHEMAS = {Stage.SOURCE: SOURCE_SCHEMA, Stage.RECORDS: RECORD_SCHEMA, Stage.EXPORTED: BATCH_SCHEMA}
WINDOW_FILES_IO_MANAGER = "window_files_io_manager"


def table_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(field.name, str(field.type)) for field in schema])


class WindowFilesIOManager(dg.ConfigurableIOManager):
    """Loads windows of the import's Parquet files as DataFrames, from wherever `storage` keeps them."""

    storage: dg.ResourceDependency[ImporterStorage]

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        """Never called for the import's assets: they yield materializations, not outputs."""
        raise TypeError(f"{context.asset_key.to_user_string()} is written by the import as it streams, not by an output")

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        if context.asset_key == HISTORY_KEY:
            return self.storage.history_files().read(sorted(context.asset_partition_keys)).to_pandas()
        stage = stage_of(context.asset_key)
        files = self.storage.windows()
        schema = STAGE_SCHEMAS[stage]
        tables = [
            files.table(stage, *split_partition_key(key), schema) for key in sorted(context.asset_partition_keys)
        ]
        return (pa.concat_tables(tables) if tables else schema.empty_table()).to_pandas()
