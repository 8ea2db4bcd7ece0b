import dagster as dg

from importer_dagster.assets import import_assets
from importer_dagster.jobs import import_contacts_job
from importer_dagster.resources import ContactsApiResource, ImporterStorage, MailchimpResource

defs = dg.Definitions(
    assets=import_assets,
    jobs=[import_contacts_job],
    resources={
        "mailchimp": MailchimpResource(),
        "contacts_api": ContactsApiResource(
            base_url=dg.EnvVar("CONTACTS_API_URL"), api_key=dg.EnvVar("CONTACTS_API_KEY")
        ),
        "storage": ImporterStorage(),
    },
    # One process per run: the steps stream through files, so a process per step buys no
    # isolation worth its start-up cost (seconds per run, times every list, every hour).
    executor=dg.in_process_executor,
)
