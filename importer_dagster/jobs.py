import dagster as dg

from importer_dagster.accounts import current_accounts, split_list_key
from importer_dagster.assets import EXPORTED_KEY, RETRY_POLICY, import_assets
from importer_dagster.checks import freshness_check
from importer_dagster.partitions import ListWindow, decode_partition_key
from importer_dagster.pipeline import replay_dead_letters
from importer_dagster.resources import ContactsApiResource, ImporterStorage

import_contacts_job = dg.define_asset_job(
    "import_contacts_job",
    # The freshness check looks across every list on its own schedule; an import run has no use for it.
    selection=dg.AssetSelection.assets(*import_assets) - dg.AssetSelection.checks(freshness_check),
    description="Fetch, transform and export one list's window (or a range of them) end to end.",
)


class ReplayFilter(dg.Config):
    account: str | None = None
    list_key: str | None = None
    window: str | None = None


@dg.op(retry_policy=RETRY_POLICY)
def replay_open_dead_letters(
    context: dg.OpExecutionContext, config: ReplayFilter, contacts_api: ContactsApiResource, storage: ImporterStorage
) -> None:
    """Each replayed window is recorded as a materialization of `exported_batches`, so its history shows it."""
    dead_letters = storage.dead_letters()
    rows = dead_letters.rows(account=config.account, list_key=config.list_key, window=config.window)
    accounts = current_accounts()
    for list_key, window_key in sorted({(row.list_key, row.window) for row in rows}):
        account = accounts.get(split_list_key(list_key)[0])
        with contacts_api.client(context.run.run_id) as client:
            stats = replay_dead_letters(
                client, account.contacts_account, dead_letters, list_key, window_key,
                run_id=context.run.run_id, batch_size=contacts_api.batch_size,
            )
        window: ListWindow = decode_partition_key(f"{list_key}|{window_key}")
        context.log.info(f"{window}: replayed {stats.replayed}, exported {stats.exported}, still dead {stats.still_dead}")
        context.log_event(
            dg.AssetMaterialization(
                asset_key=EXPORTED_KEY,
                partition=window.partition_key,
                description="replay of dead letters",
                metadata={"replayed": stats.replayed, "exported": stats.exported, "still_dead": stats.still_dead},
            )
        )


@dg.job(description="Send open dead letters again after their cause was fixed; resolved letters keep their history.")
def replay_dead_letters_job():
    replay_open_dead_letters()
