"""`importer-dagster settings`: every setting as the importer reads it now."""

from __future__ import annotations

import argparse

from importer_dagster.cli.common import EXIT_MISTAKE
from importer_dagster.core import settings
from importer_dagster.core.settings import ConfigError


def cmd_settings(args: argparse.Namespace) -> int:
    """What every setting is now: a deployment's first stop when something behaves unexpectedly."""
    from importer_dagster.core.accounts import current_accounts

    rows = settings.describe()
    rows.append((settings.CONTACTS_API_KEY_ENV, _set_or_not(settings.CONTACTS_API_KEY_ENV), "the Contacts API key"))
    try:
        rows += [
            (account.mailchimp_api_key_env, _set_or_not(account.mailchimp_api_key_env), f"account {account.id}'s Mailchimp key")
            for account in current_accounts().accounts
        ]
    except ConfigError as error:
        rows.append(("(accounts)", f"INVALID: {error}", "a readable accounts file with at least one account"))
    width = max(len(name) for name, _, _ in rows)
    for name, shown, accepts in rows:
        print(f"{name.ljust(width)}  {shown}" + (f"  [{accepts}]" if accepts else ""))
    return EXIT_MISTAKE if any(shown.startswith("INVALID") for _, shown, _ in rows) else 0


def _set_or_not(variable: str) -> str:
    return "set" if settings.secret(variable) else "unset"
