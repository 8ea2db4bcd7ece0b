"""The three stages of an import, named once: each is a Dagster asset and a folder of window files."""

from enum import Enum


class Stage(str, Enum):
    SOURCE = "mailchimp_contacts"
    """Members of one Mailchimp list whose `last_changed` falls in the window, as Mailchimp sent them."""
    RECORDS = "contact_records"
    """The members mapped to Contacts API records and validated."""
    EXPORTED = "exported_batches"
    """The records imported into the Contacts API."""
