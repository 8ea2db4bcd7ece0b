import dagster as dg

from importer_dagster.assets import import_assets
from importer_dagster.checks import freshness_check, freshness_job, freshness_schedule
from importer_dagster.jobs import import_contacts_job, replay_dead_letters_job
from importer_dagster.resources import ContactsApiResource, ImporterStorage, MailchimpResource
from importer_dagster.schedules import hourly_import_schedule
from importer_dagster.sensors import alert_sensor, failed_partitions_sensor, list_discovery_sensor

defs = dg.Definitions(
    assets=import_assets,
    asset_checks=[freshness_check],
    jobs=[import_contacts_job, freshness_job, replay_dead_letters_job],
    schedules=[hourly_import_schedule, freshness_schedule],
    sensors=[list_discovery_sensor, failed_partitions_sensor, alert_sensor],
    resources={
        "mailchimp": MailchimpResource(),
        "contacts_api": ContactsApiResource(
            base_url=dg.EnvVar("CONTACTS_API_URL"), api_key=dg.EnvVar("CONTACTS_API_KEY")
        ),
        "storage": ImporterStorage(),
    },
    # One process per run: the op streams through files, so a process per step buys no isolation
    # worth its start-up cost (seconds per run, times every list, every hour).
    executor=dg.in_process_executor,
)
