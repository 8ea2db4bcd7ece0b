"""Mailchimp member → Contacts API record: pure functions, no Dagster, no I/O.

Mapping and validation are one pydantic-core pass over a whole chunk of members (in Rust). A
member that fails becomes a dead letter with its reason instead of failing the window.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import orjson
import pyarrow as pa
from pydantic import ConfigDict, GetPydanticSchema, StringConstraints, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError, SchemaValidator, core_schema
from typing_extensions import TypedDict

from importer_dagster.core.dead_letters import DeadLetter
from importer_dagster.core.mailchimp import parse_last_changed

Status = Literal["subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived"]
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
EMAIL_MAX_LENGTH = 254
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=EMAIL_MAX_LENGTH)]

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
    """A record as the Contacts API's import endpoint requires it (see docs/contacts-api.md): the
    contract that the one-pass mapping below must meet, written as types a reader can check it by.
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


def _text_or_none(value: str) -> str | None:
    """Mailchimp sends "" for an empty field; the Contacts API wants null."""
    return value or None


def _changed_at(last_changed: str) -> str:
    changed = parse_last_changed(last_changed)
    if changed is None:
        raise PydanticCustomError("real_instant", "Input should be an instant with a time zone")
    if len(last_changed) == 25 and last_changed.endswith("+00:00"):
        return f"{last_changed[:19]}Z"
    return changed.strftime("%Y-%m-%dT%H:%M:%SZ")


def _tag_names(tags: Any) -> Any:
    return [tag.get("name") for tag in tags if isinstance(tag, dict)] if isinstance(tags, list) else tags


def _field(schema: core_schema.CoreSchema, source: str | list[str] | None = None, **default: Any) -> core_schema.TypedDictField:
    if default:
        schema = core_schema.with_default_schema(schema, **default)
    return core_schema.typed_dict_field(schema, validation_alias=source, required=not default)


_TEXT = core_schema.nullable_schema(
    core_schema.no_info_after_validator_function(_text_or_none, core_schema.str_schema(strict=True, strip_whitespace=True))
)
_STRING = core_schema.str_schema(strict=True)
_MEMBER_TO_RECORD = core_schema.typed_dict_schema(
    {
        "id": _field(core_schema.any_schema(), default=None),
        "email": _field(
            core_schema.str_schema(strict=True, strip_whitespace=True, to_lower=True, pattern=EMAIL_PATTERN, max_length=EMAIL_MAX_LENGTH),
            "email_address",
        ),
        "first_name": _field(_TEXT, ["merge_fields", "FNAME"], default=None),
        "last_name": _field(_TEXT, ["merge_fields", "LNAME"], default=None),
        "status": _field(core_schema.literal_schema(list(get_args(Status)))),
        "list_id": _field(_STRING),
        "changed_at": _field(core_schema.no_info_after_validator_function(_changed_at, _STRING), "last_changed"),
        "tags": _field(core_schema.no_info_before_validator_function(_tag_names, core_schema.list_schema(_STRING, strict=True))),
        "language": _field(_TEXT, default=None),
        "vip": _field(core_schema.bool_schema(strict=True), default=False),
    },
    extra_behavior="ignore",
)
"""A member mapped and validated in one pass, in pydantic-core: only the mappings Rust cannot do
(an empty text as null, the UTC time, the tag names) call back into Python. That is about half
the CPU of mapping each member in Python and validating the records after."""
_member = SchemaValidator(_MEMBER_TO_RECORD)
_members = SchemaValidator(
    core_schema.list_schema(core_schema.with_default_schema(_MEMBER_TO_RECORD, default=None, on_error="default"))
)
"""A member that fails comes out as None, so one bad contact leaves the rest of its chunk mapped."""
_RECORD_FIELD_OF = {"email_address": "email", "last_changed": "changed_at", "merge_fields.FNAME": "first_name", "merge_fields.LNAME": "last_name"}


def _with_external_id(mapped: dict[str, Any]) -> dict[str, Any]:
    mapped["external_id"] = external_id_for(mapped["list_id"], mapped.pop("id"))
    return mapped


def member_to_record(member: dict[str, Any]) -> dict[str, Any]:
    """Raises a ValidationError that names each field wrong, as the Mailchimp member calls it."""
    return _with_external_id(_member.validate_python(member))


def _reason(issues: list[ErrorDetails]) -> str:
    problems = []
    for issue in issues:
        path = ".".join(str(part) for part in issue["loc"])
        field = next((name + path[len(alias):] for alias, name in _RECORD_FIELD_OF.items() if path.startswith(alias)), path)
        value = issue.get("input")
        shown = f" (got {value!r})" if isinstance(value, (str, int, float, bool)) or value is None else ""
        problems.append(f"{field}: {issue['msg']}{shown}"[:300])
    return "; ".join(problems)


def transform_members(members: Iterable[dict[str, Any]]) -> Transformed:
    """One pass over the whole chunk; only the members that failed are validated again, alone,
    for the reasons."""
    members = list(members)
    mapped = _members.validate_python(members)
    records, dead_letters = [], []
    for member, record in zip(members, mapped, strict=True):
        if record is not None:
            records.append(_with_external_id(record))
            continue
        try:
            records.append(member_to_record(member))
        except ValidationError as error:
            dead_letters.append(
                DeadLetter(
                    member_id=str(member.get("id")),
                    external_id=external_id_for(member.get("list_id"), member.get("id")),
                    reason=_reason(error.errors(include_url=False)),
                    payload=orjson.dumps(member, default=str).decode(),
                )
            )
    return Transformed(records, dead_letters)
