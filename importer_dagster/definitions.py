import dagster as dg

from importer_dagster.assets import import_assets
from importer_dagster.compaction import compact_history, compact_history_job, compaction_schedule
from importer_dagster.core import settings
from importer_dagster.io_manager import WINDOW_FILES_IO_MANAGER, WindowFilesIOManager
from importer_dagster.jobs import import_jobs, replay_dead_letters_job, resync_job
from importer_dagster.resources import ContactsApiResource, ImporterStorage, MailchimpResource
from importer_dagster.schedules import hourly_schedules
from importer_dagster.sensors import alert_sensor, failed_partitions_sensor, freshness_sensor, list_discovery_sensor
from importer_dagster.workers import run_executor

storage = ImporterStorage()

defs = dg.Definitions(
    assets=[*import_assets, compact_history],
    jobs=[*import_jobs, compact_history_job, replay_dead_letters_job, resync_job],
    schedules=[*hourly_schedules, compaction_schedule],
    sensors=[list_discovery_sensor, failed_partitions_sensor, alert_sensor, freshness_sensor],
    resources={
        "mailchimp": MailchimpResource(),
        # The URL as it was when the code loaded, so the UI shows it; the key only by its variable's name.
        "contacts_api": ContactsApiResource(base_url=settings.CONTACTS_API_URL.get() or ""),
        "storage": storage,
        WINDOW_FILES_IO_MANAGER: WindowFilesIOManager(storage=storage),
    },
    # One process per run on a single host: the op streams through files, so a process per step
    # buys no isolation worth its start-up cost. With a Celery broker, the step goes to a worker host.
    executor=run_executor(),
)
