"""Client accounts: who to import from, and where to.

Accounts live in a YAML file so that thousands of them can be managed outside the code, and so that
the file holds only the *names* of the environment variables with the Mailchimp keys: a key never
lives on disk next to the rest of the configuration.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from importer_dagster.core import settings
from importer_dagster.core.settings import ConfigError

DEMO_ACCOUNTS_FILE = Path(str(resources.files("importer_dagster").joinpath("demo/accounts.yaml")))
_DATA_CENTRE = re.compile(r"-([a-z]+[0-9]+)$")


class Account(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9-]+$")
    mailchimp_api_key_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    contacts_account: str = Field(min_length=1)
    lists: tuple[str, ...] | None = None

    def mailchimp_api_key(self) -> str:
        """Read at the moment of use so that a key rotated in the environment needs no reload."""
        key = settings.secret(self.mailchimp_api_key_env)
        if not key:
            raise ConfigError(
                f"account '{self.id}': mailchimp_api_key_env: environment variable "
                f"{self.mailchimp_api_key_env} is not set"
            )
        if not _DATA_CENTRE.search(key):
            raise ConfigError(
                f"account '{self.id}': the Mailchimp key in {self.mailchimp_api_key_env} has no "
                "data-centre suffix (it should end like '-us6')"
            )
        return key

    def data_centre(self) -> str:
        match = _DATA_CENTRE.search(self.mailchimp_api_key())
        assert match
        return match.group(1)

    def allows(self, list_id: str) -> bool:
        return self.lists is None or list_id in self.lists


class AccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: list[Account]

    @field_validator("accounts")
    @classmethod
    def _unique_ids(cls, accounts: list[Account]) -> list[Account]:
        seen: set[str] = set()
        for index, account in enumerate(accounts):
            if account.id in seen:
                raise ValueError(f"entry {index}: duplicate id '{account.id}'")
            seen.add(account.id)
        return accounts

    @model_validator(mode="after")
    def _index(self) -> AccountsFile:
        self._by_id = {account.id: account for account in self.accounts}
        return self

    def has(self, account_id: str) -> bool:
        return account_id in self._by_id

    def get(self, account_id: str) -> Account:
        try:
            return self._by_id[account_id]
        except KeyError:
            raise ConfigError(f"unknown account '{account_id}' (not in the accounts file)") from None


def accounts_file_path() -> Path:
    """Never a default: a deployment that lost the variable must stop, not import the demo's accounts."""
    configured = settings.ACCOUNTS_FILE.get()
    if not configured:
        raise ConfigError(
            f"{settings.ACCOUNTS_FILE.name} is not set: point it at the accounts file "
            f"(the demo's is {DEMO_ACCOUNTS_FILE})"
        )
    return Path(configured)


def _describe(error: ValidationError, raw: object) -> str:
    """Turn pydantic's report into 'entry 3 (id acme): field: problem' lines a user can act on."""
    problems = []
    for issue in error.errors():
        location = list(issue["loc"])
        where = ""
        if len(location) >= 2 and location[0] == "accounts" and isinstance(location[1], int):
            index = location[1]
            entry = raw["accounts"][index] if isinstance(raw, dict) else None
            name = entry.get("id") if isinstance(entry, dict) else None
            where = f"entry {index}" + (f" (id '{name}')" if name else "") + ": "
            location = location[2:]
        field = ".".join(str(part) for part in location)
        message = issue["msg"].removeprefix("Value error, ")
        if issue["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{where}{field + ': ' if field else ''}{message}")
    return "; ".join(problems)


def load_accounts(path: Path) -> AccountsFile:
    """An empty or accountless file is an error, not zero accounts: the discovery sensor would
    otherwise retire every list, and the freshness check would then watch none of them."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"accounts file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"accounts file {path} cannot be read ({type(error).__name__})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"accounts file {path} is not valid YAML: {error}".replace("\n", " ")) from None
    if raw is None:
        raise ConfigError(f"accounts file {path} is empty")
    try:
        accounts = AccountsFile.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"accounts file {path}: {_describe(error, raw)}") from None
    if not accounts.accounts:
        raise ConfigError(f"accounts file {path} lists no accounts")
    return accounts


@cache
def _cached_accounts(path: Path, mtime: float) -> AccountsFile:
    return load_accounts(path)


def current_accounts() -> AccountsFile:
    """The configured accounts, re-read only when the file changes: thousands of partitions share one parse."""
    path = accounts_file_path()
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        raise ConfigError(f"accounts file {path} does not exist") from None
    return _cached_accounts(path, mtime)

