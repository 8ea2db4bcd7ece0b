import pytest

from importer_dagster.core.accounts import load_accounts
from importer_dagster.core.settings import ConfigError

VALID = """
accounts:
  - id: acme
    mailchimp_api_key_env: MAILCHIMP_KEY_ACME
    contacts_account: acme-contacts
    lists: [1a2d7ebf82]
  - id: globex
    mailchimp_api_key_env: MAILCHIMP_KEY_GLOBEX
    contacts_account: globex-contacts
"""


def write(tmp_path, text):
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    return path


def test_a_valid_file_loads_with_optional_allow_list(tmp_path):
    accounts = load_accounts(write(tmp_path, VALID))
    acme, globex = accounts.accounts
    assert acme.allows("1a2d7ebf82") and not acme.allows("other")
    assert globex.allows("anything")
    assert accounts.get("globex") is globex


def test_thousands_of_accounts_load(tmp_path):
    entries = "".join(
        f"  - id: client-{i}\n    mailchimp_api_key_env: KEY_{i}\n    contacts_account: c{i}\n" for i in range(5000)
    )
    accounts = load_accounts(write(tmp_path, "accounts:\n" + entries))
    assert len(accounts.accounts) == 5000
    assert accounts.get("client-4999").contacts_account == "c4999"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID.replace("contacts_account: acme-contacts", "contacts_account: acme-contacts\n    colour: red"),
         "entry 0 (id 'acme'): colour: unknown key"),
        (VALID.replace("id: globex", "id: acme"), "duplicate id 'acme'"),
        (VALID.replace("id: globex", "id: Globex_Inc"), "entry 1 (id 'Globex_Inc'): id:"),
        (VALID.replace("    contacts_account: globex-contacts\n", ""), "entry 1 (id 'globex'): contacts_account: Field required"),
        ("accounts: [", "not valid YAML"),
    ],
)
def test_mistakes_name_the_entry_and_field_in_one_line(tmp_path, text, expected):
    with pytest.raises(ConfigError) as caught:
        load_accounts(write(tmp_path, text))
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_key_variable_names_the_account_and_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILCHIMP_KEY_ACME", raising=False)
    acme = load_accounts(write(tmp_path, VALID)).get("acme")
    with pytest.raises(ConfigError, match=r"account 'acme': mailchimp_api_key_env: environment variable MAILCHIMP_KEY_ACME is not set"):
        acme.mailchimp_api_key()


def test_a_key_without_data_centre_is_refused_without_echoing_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILCHIMP_KEY_ACME", "0123456789abcdef0123456789abcdef")
    acme = load_accounts(write(tmp_path, VALID)).get("acme")
    with pytest.raises(ConfigError) as caught:
        acme.mailchimp_api_key()
    assert "data-centre" in str(caught.value)
    assert "0123456789abcdef" not in str(caught.value)


def test_the_data_centre_comes_from_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILCHIMP_KEY_ACME", "0123456789abcdef0123456789abcdef-us6")
    assert load_accounts(write(tmp_path, VALID)).get("acme").data_centre() == "us6"
