"""Mailchimp member → Contacts API record: pure functions, no Dagster, no I/O.

Validation is pydantic's, run once over a whole chunk of members (fast, in Rust). Its errors
carry each failing member's index, so one bad contact becomes a dead letter with its reason
instead of failing the window, and the rest of the chunk is never validated twice.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
import pyarrow as pa
from pydantic import ConfigDict, GetPydanticSchema, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, core_schema
from typing_extensions import TypedDict

from importer_dagster.core.dead_letters import DeadLetter
from importer_dagster.core.mailchimp import parse_last_changed

Status = Literal["subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived"]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s.]+$", max_length=254)]

RECORD_SCHEMA = pa.schema(
    [
        ("external_id", pa.string()),
        ("email", pa.string()),
        ("first_name", pa.string()),
        ("last_name", pa.string()),
        ("status", pa.string()),
        ("list_id", pa.string()),
        ("changed_at", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("language", pa.string()),
        ("vip", pa.bool_()),
    ]
)


def external_id_for(list_id: Any, member_id: Any) -> str:
    """Unique per contact across lists: a member's id is only unique within its list."""
    return f"{list_id}:{member_id}"


def member_id_of(record: dict[str, Any]) -> str:
    return record["external_id"].split(":", 1)[-1]


RealInstant = Annotated[
    str,
    GetPydanticSchema(
        lambda _source, _handler: core_schema.chain_schema(
            [
                core_schema.str_schema(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", strict=True),
                core_schema.datetime_schema(strict=False),
            ]
        )
    ),
]
"""UTC to the second, and a real instant: the pattern alone would pass 2026-13-45T99:00:00Z.

Both checks run in pydantic-core, without a Python call per record. The parsed datetime is
validation's output only; the record keeps its text."""


class ContactRecord(TypedDict):
    """A record as the Contacts API's import endpoint requires it (see docs/contacts-api.md).

    A TypedDict rather than a model: validation then builds plain dicts, which costs a third less
    than model instances, and the import never needed the instances.
    """

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]

    external_id: str
    email: Email
    first_name: str | None
    last_name: str | None
    status: Status
    list_id: str
    changed_at: RealInstant
    tags: list[str]
    language: str | None
    vip: bool


_records = TypeAdapter(list[ContactRecord])
_RECORD_FIELDS = operator.itemgetter(*RECORD_SCHEMA.names)


@dataclass
class Transformed:
    records: list[dict[str, Any]]
    """Validated and JSON-ready, in the order the members came."""
    dead_letters: list[DeadLetter]

    def table(self) -> pa.Table:
        """Column by column: Arrow's row-wise `from_pylist` costs twenty times more per record, and
        one `itemgetter` pass transposes the records in C instead of a Python loop per column."""
        if not self.records:
            return RECORD_SCHEMA.empty_table()
        columns = zip(*map(_RECORD_FIELDS, self.records), strict=True)
        arrays = [pa.array(column, field.type) for column, field in zip(columns, RECORD_SCHEMA, strict=True)]
        return pa.Table.from_arrays(arrays, schema=RECORD_SCHEMA)


def _text_or_none(value: Any) -> Any:
    """Mailchimp sends "" for an empty field; the Contacts API wants null."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _changed_at(last_changed: Any) -> Any:
    changed = parse_last_changed(last_changed)
    if changed is None:
        return last_changed
    if last_changed.endswith("+00:00") and len(last_changed) == 25:
        return f"{last_changed[:19]}Z"
    return changed.strftime("%Y-%m-%dT%H:%M:%SZ")


def member_to_record(member: dict[str, Any]) -> dict[str, Any]:
    """Map without judging: anything wrong is left for validation to name."""
    merge_fields = member.get("merge_fields") or {}
    email = member.get("email_address")
    last_changed = member.get("last_changed")
    tags = member.get("tags")
    return {
        "external_id": external_id_for(member.get("list_id"), member.get("id")),
        "email": email.strip().lower() if isinstance(email, str) else email,
        "first_name": _text_or_none(merge_fields.get("FNAME")),
        "last_name": _text_or_none(merge_fields.get("LNAME")),
        "status": member.get("status"),
        "list_id": member.get("list_id"),
        "changed_at": _changed_at(last_changed),
        "tags": [tag.get("name") for tag in tags if isinstance(tag, dict)] if isinstance(tags, list) else tags,
        "language": _text_or_none(member.get("language")),
        "vip": member.get("vip", False),
    }


def _reason(issues: list[ErrorDetails]) -> str:
    problems = []
    for issue in issues:
        field = ".".join(str(part) for part in issue["loc"][1:])
        value = issue.get("input")
        shown = f" (got {value!r})" if isinstance(value, (str, int, float, bool)) or value is None else ""
        problems.append(f"{field}: {issue['msg']}{shown}"[:300])
    return "; ".join(problems)


def transform_members(members: Iterable[dict[str, Any]]) -> Transformed:
    """One validation pass over the whole chunk; its errors say which members failed and why."""
    members = list(members)
    candidates = [member_to_record(member) for member in members]
    issues_by_index: dict[int, list[ErrorDetails]] = defaultdict(list)
    try:
        _records.validate_python(candidates)
    except ValidationError as error:
        for issue in error.errors(include_url=False):
            issues_by_index[int(issue["loc"][0])].append(issue)
    if not issues_by_index:
        return Transformed(candidates, [])
    valid = [candidate for index, candidate in enumerate(candidates) if index not in issues_by_index]
    dead_letters = [
        DeadLetter(
            member_id=str(members[index].get("id")),
            external_id=candidates[index]["external_id"],
            reason=_reason(issues),
            payload=orjson.dumps(members[index], default=str).decode(),
        )
        for index, issues in sorted(issues_by_index.items())
    ]
    return Transformed(valid, dead_letters)
