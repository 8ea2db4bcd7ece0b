"""Which Mailchimp lists exist, per account, as `<account>.<list>` partition keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from importer_dagster.accounts import Account, ConfigError, list_key
from importer_dagster.concurrency import ordered_parallel_map
from importer_dagster.http import HttpError
from importer_dagster.mailchimp import iter_lists
from importer_dagster.resources import MailchimpResource

ACCOUNTS_IN_PARALLEL = 8


@dataclass
class Discovery:
    keys: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    """account id → one-line reason; one broken account never hides the others' lists."""


def discover_lists(accounts: list[Account], mailchimp: MailchimpResource, correlation_id: str) -> Discovery:
    def one(account: Account) -> tuple[Account, list[str] | str]:
        try:
            with mailchimp.client(account, correlation_id) as client:
                return account, [
                    list_key(account.id, item["id"]) for item in iter_lists(client) if account.allows(item["id"])
                ]
        except (HttpError, ConfigError) as error:
            return account, str(error)

    discovery = Discovery()
    for account, outcome in ordered_parallel_map(one, accounts, ACCOUNTS_IN_PARALLEL, "discover"):
        if isinstance(outcome, str):
            discovery.errors[account.id] = outcome
        else:
            discovery.keys.extend(outcome)
    return discovery
