"""Which Mailchimp lists exist, per account, as `<account>.<list>` partition keys."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from importer_dagster.core.accounts import Account
from importer_dagster.core.http import ApiClient, HttpError
from importer_dagster.core.mailchimp import iter_lists
from importer_dagster.core.parallel import ordered_parallel_map
from importer_dagster.core.settings import ConfigError
from importer_dagster.core.windows import list_key

ACCOUNTS_IN_PARALLEL = 8

Connect = Callable[[Account], AbstractContextManager[ApiClient]]
"""Opens a Mailchimp client for an account (the Mailchimp resource's `client`, bound to a correlation id)."""


@dataclass
class Discovery:
    keys: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    """account id → one-line reason; one broken account never hides the others' lists."""
    misconfigured: set[str] = field(default_factory=set)
    """Accounts whose error is a mistake in the configuration (an unset key), not Mailchimp's answer."""


def discover_lists(accounts: list[Account], connect: Connect) -> Discovery:
    def one(account: Account) -> tuple[Account, list[str] | Exception]:
        try:
            with connect(account) as client:
                return account, [
                    list_key(account.id, item["id"]) for item in iter_lists(client) if account.allows(item["id"])
                ]
        except (HttpError, ConfigError) as error:
            return account, error

    discovery = Discovery()
    for account, outcome in ordered_parallel_map(one, accounts, ACCOUNTS_IN_PARALLEL, "discover"):
        if isinstance(outcome, Exception):
            discovery.errors[account.id] = str(outcome)
            if isinstance(outcome, ConfigError):
                discovery.misconfigured.add(account.id)
        else:
            discovery.keys.extend(outcome)
    return discovery
