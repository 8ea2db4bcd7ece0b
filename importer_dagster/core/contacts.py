"""The Contacts API (docs/contacts-api.md): one client, and the one way a batch is posted.

Export and replay both post through `post_batch`, so both send the same body for the same records,
check the answer the same way, and turn each rejection into the same dead letter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from importer_dagster.core.dead_letters import DeadLetter
from importer_dagster.core.http import ApiClient, FatalHttpError, RetrySettings
from importer_dagster.core.transform import member_id_of


@contextmanager
def contacts_client(
    base_url: str, api_key: str, correlation_id: str, *, parallelism: int, retry: RetrySettings
) -> Iterator[ApiClient]:
    client = ApiClient(
        base_url=base_url,
        describe="Contacts API",
        api="contacts",
        headers={
            "Authorization": f"Bearer {api_key}",
            "X-Correlation-ID": correlation_id,
            "Content-Type": "application/json",
        },
        secrets=(api_key,),
        max_connections=parallelism,
        retry=retry,
    )
    try:
        yield client
    finally:
        client.close()


def verify_account(client: ApiClient, contacts_account: str, *, account: str) -> None:
    """An authenticated call that costs next to nothing: a wrong key fails the run even when change
    detection leaves nothing to send, instead of going unnoticed until a contact changes."""
    client.request("GET", f"/v1/accounts/{contacts_account}", account=account).json()


def idempotency_key(scope: str, body: bytes) -> str:
    """Same scope and same body → same key, so a POST sent again imports nothing twice.

    The scope names what the batch belongs to (a window, a replay) and anything that must make a
    deliberate re-send differ from a retry (a period, a run).
    """
    return hashlib.sha256(scope.encode() + body).hexdigest()


@dataclass(frozen=True)
class EncodedBatch:
    """Records as the body that carries them.

    A batch waiting for its answer is held as its body alone: the records' dicts take about three
    times the memory, so in the same memory the export keeps three times the batches in flight.
    The records are decoded again only where an answer needs them, which is rare: for a rejection's
    dead letter, or for the dead letters a batch resolves.
    """

    body: bytes
    size: int
    first_external_id: str
    last_external_id: str

    @classmethod
    def of(cls, records: Sequence[dict[str, Any]]) -> EncodedBatch:
        body = orjson.dumps({"records": records}, option=orjson.OPT_SORT_KEYS)
        return cls(body, len(records), records[0]["external_id"], records[-1]["external_id"])

    def records(self) -> list[dict[str, Any]]:
        return orjson.loads(self.body)["records"]


@dataclass(frozen=True)
class BatchAnswer:
    batch: EncodedBatch
    idempotency_key: str
    accepted: int
    rejections: list[DeadLetter]

    @property
    def rejected_member_ids(self) -> set[str]:
        return {letter.member_id for letter in self.rejections}


def encoded_record(record: dict[str, Any]) -> bytes:
    """A record's JSON exactly as a batch's body carries it: canonical (sorted keys, compact), so
    the same records always make the same body and the same idempotency key."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def post_batch(
    client: ApiClient, contacts_account: str, batch: EncodedBatch, *, scope: str, account: str
) -> BatchAnswer:
    """Import 1 to 1000 records; a rejected record is rejected alone and comes back as a dead letter."""
    path = f"/v1/accounts/{contacts_account}/contacts/import"
    key = idempotency_key(scope, batch.body)
    answer = client.request("POST", path, body=batch.body, headers={"Idempotency-Key": key}, account=account).json()
    if not isinstance(answer, dict) or not isinstance(answer.get("accepted"), int):
        raise FatalHttpError(f"Contacts API: POST {path} answered an unexpected body")
    rejected = answer.get("rejected") or []
    records = batch.records() if rejected else []
    rejections = []
    for rejection in rejected:
        record = records[int(rejection["index"])]
        rejections.append(
            DeadLetter(
                member_id=member_id_of(record),
                external_id=record["external_id"],
                reason=f"rejected by the Contacts API: {rejection.get('reason', 'no reason given')}",
                payload=orjson.dumps(record).decode(),
            )
        )
    return BatchAnswer(batch, key, answer["accepted"], rejections)
