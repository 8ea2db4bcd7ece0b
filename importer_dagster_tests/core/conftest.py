"""The core's tests need the simulators only; see `test_dagster_free.py`."""

from importer_dagster_tests.fixtures import contacts_sim, importer_env, mailchimp_sim, object_store, s3_url  # noqa: F401
