"""Posting a batch to the Contacts API simulator over real HTTP: the body, and so the key, never drift."""

import hashlib

from importer_dagster.core.contacts import EncodedBatch, contacts_client, encoded_record, post_batch
from importer_dagster.core.http import RetrySettings
from importer_dagster_tests.fixtures import CONTACTS_KEY

SCOPE = "acme.aaaaaaaaa1|2026-11-20-03:00\nperiod:2930\n"


def record(index: int) -> dict:
    return {
        "external_id": f"aaaaaaaaa1:m{index}", "email": f"p{index}@example.com", "first_name": "Zoë",
        "last_name": None, "status": "subscribed", "list_id": "aaaaaaaaa1", "changed_at": "2026-11-20T03:00:00Z",
        "tags": ["vip", "é"], "language": "en", "vip": index % 2 == 0,
    }


def test_a_batch_body_holds_each_record_exactly_as_change_detection_hashed_it(contacts_sim):
    """The key is the scope and the body, and the body is the hashed encodings side by side: the
    hash describes what the API was sent, and windows exported before keep their keys."""
    batch = [record(index) for index in range(3)]
    body = b'{"records":[' + b",".join(encoded_record(sent) for sent in batch) + b"]}"

    with contacts_client(contacts_sim.base_url, CONTACTS_KEY, "test-run", parallelism=1, retry=RetrySettings()) as client:
        answer = post_batch(client, "acme-contacts", EncodedBatch.of(batch), scope=SCOPE, account="acme")

    assert answer.idempotency_key == hashlib.sha256(SCOPE.encode() + body).hexdigest()
    assert answer.accepted == 3 and not answer.rejections
