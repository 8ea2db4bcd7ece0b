"""Mailchimp member → Contacts API record: pure functions, no Dagster, no I/O.

Validation is pydantic's, run once per page over the whole list (fast, in Rust); only a page
that contains a bad member falls back to member-by-member validation, so that one bad contact
becomes a dead letter with its reason instead of failing the window.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter, ValidationError

from importer_dagster.mailchimp import parse_last_changed
from importer_dagster.storage import DeadLetter

Status = Literal["subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived"]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s.]+$", max_length=254)]

RECORD_COLUMNS = (
    "external_id", "email", "first_name", "last_name", "status", "list_id", "changed_at", "tags", "language", "vip",
)


class ContactRecord(BaseModel):
    """A record as the Contacts API's import endpoint requires it (see docs/contacts-api.md)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    external_id: str
    email: Email
    first_name: str | None
    last_name: str | None
    status: Status
    list_id: str
    changed_at: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")]
    tags: list[str]
    language: str | None
    vip: bool


_records = TypeAdapter(list[ContactRecord])


@dataclass
class Transformed:
    records: pd.DataFrame
    dead_letters: list[DeadLetter]


def _text_or_none(value: Any) -> Any:
    """Mailchimp sends "" for an empty field; the Contacts API wants null."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def member_to_record(member: dict[str, Any]) -> dict[str, Any]:
    """Map without judging: anything wrong is left for validation to name."""
    merge_fields = member.get("merge_fields") or {}
    email = member.get("email_address")
    changed = parse_last_changed(member.get("last_changed"))
    tags = member.get("tags")
    return {
        "external_id": f"{member.get('list_id')}:{member.get('id')}",
        "email": email.strip().lower() if isinstance(email, str) else email,
        "first_name": _text_or_none(merge_fields.get("FNAME")),
        "last_name": _text_or_none(merge_fields.get("LNAME")),
        "status": member.get("status"),
        "list_id": member.get("list_id"),
        "changed_at": changed.strftime("%Y-%m-%dT%H:%M:%SZ") if changed else member.get("last_changed"),
        "tags": [tag.get("name") for tag in tags if isinstance(tag, dict)] if isinstance(tags, list) else tags,
        "language": _text_or_none(member.get("language")),
        "vip": member.get("vip", False),
    }


def _reason(error: ValidationError) -> str:
    problems = []
    for issue in error.errors(include_url=False):
        field = ".".join(str(part) for part in issue["loc"])
        value = issue.get("input")
        shown = f" (got {value!r})" if isinstance(value, (str, int, float, bool)) or value is None else ""
        problems.append(f"{field}: {issue['msg']}{shown}"[:300])
    return "; ".join(problems)


def transform_members(members: Iterable[dict[str, Any]]) -> Transformed:
    members = list(members)
    candidates = [member_to_record(member) for member in members]
    try:
        _records.validate_python(candidates)
        valid = candidates
        dead_letters: list[DeadLetter] = []
    except ValidationError:
        valid, dead_letters = [], []
        for member, candidate in zip(members, candidates):
            try:
                ContactRecord.model_validate(candidate)
                valid.append(candidate)
            except ValidationError as error:
                dead_letters.append(
                    DeadLetter(
                        member_id=str(member.get("id")),
                        external_id=candidate["external_id"],
                        reason=_reason(error),
                        payload=json.dumps(member, ensure_ascii=False, default=str),
                    )
                )
    return Transformed(pd.DataFrame(valid, columns=list(RECORD_COLUMNS)), dead_letters)


def frame_to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Back to plain JSON-able dicts, as read from Parquet (tags arrive as arrays, nulls as None)."""
    records = []
    for row in frame.itertuples(index=False):
        record = dict(zip(RECORD_COLUMNS, row))
        record["tags"] = [str(tag) for tag in record["tags"]] if record["tags"] is not None else []
        record["vip"] = bool(record["vip"])
        for name in ("first_name", "last_name", "language"):
            if pd.isna(record[name]):
                record[name] = None
        records.append(record)
    return records
