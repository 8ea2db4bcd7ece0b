"""The assets' keys, made once from the stage names the core writes its files under.

Each list group has the three import assets under its own prefix (`lists_00/contact_records`);
the daily history of every list is one asset, `import_history`.
"""

import dagster as dg

from importer_dagster.core.stages import Stage

HISTORY_KEY = dg.AssetKey("import_history")


def group_name(number: int) -> str:
    return f"lists_{number:02d}"


def asset_key(group: int, stage: Stage) -> dg.AssetKey:
    return dg.AssetKey([group_name(group), stage.value])


def stage_of(key: dg.AssetKey) -> Stage:
    return Stage(key.path[-1])


def group_of(key: dg.AssetKey) -> int:
    return int(key.path[0].removeprefix("lists_"))
