"""A local stand-in for the external Contacts API (see docs/contacts-api.md).

The importer's correctness claims (every record arrives, none arrives twice, retries are safe) can
only be checked against a server that keeps what it received. This one persists to SQLite so tests
and benchmarks can read back exactly which records landed and how often, and it injects the faults
(5xx, 429, slow and lost responses, per-record rejections) that the importer must survive.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import hmac
import json
import logging
import operator
import os
import random
import re
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from pydantic import ConfigDict, GetPydanticSchema, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import core_schema
from typing_extensions import NotRequired, TypedDict

from importer_dagster.simulators.server import Request, Response, SimulatorServer

DEMO_API_KEY = "demo-contacts-key-7d3f9a"
"""Fake key shared by the demo's simulator and importer; it protects nothing."""

DEFAULT_PORT = 8766
MAX_RECORDS_PER_REQUEST = 1000
STATUSES = frozenset({"subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived"})

_REQUIRED_FIELDS = ("external_id", "email", "first_name", "last_name", "status", "list_id", "changed_at")
_OPTIONAL_FIELDS = ("tags", "language", "vip")
_REQUIRED_SET = frozenset(_REQUIRED_FIELDS)
_KNOWN_FIELDS = frozenset(_REQUIRED_FIELDS + _OPTIONAL_FIELDS)
_CHANGED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_IMPORT_PATH = re.compile(r"/v1/accounts/([^/]+)/contacts/import")
_ACCOUNT_PATH = re.compile(r"/v1/accounts/([^/]+)")
_ADMIN_ACCOUNT_PATH = re.compile(r"/_sim/accounts/([^/]+)/(contacts|imports)")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    external_id TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    correlation_id TEXT,
    received_at TEXT NOT NULL,
    record_json TEXT
);
CREATE TABLE IF NOT EXISTS idempotency (
    account TEXT NOT NULL,
    key TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    response_json TEXT NOT NULL,
    PRIMARY KEY (account, key)
);
"""

# A file written before contacts were read from the audit log kept them in a table of their own:
# each contact's text moves to the audit row it came from, so a restart on that file keeps them.
_FROM_CONTACTS_TABLE = """
ALTER TABLE imports ADD COLUMN record_json TEXT;
UPDATE imports SET record_json = (
    SELECT record_json FROM contacts
    WHERE contacts.account = imports.account AND contacts.external_id = imports.external_id
)
WHERE id IN (
    SELECT max(imports.id) FROM imports JOIN contacts USING (account, external_id)
    WHERE imports.changed_at = contacts.changed_at
    GROUP BY imports.account, imports.external_id
);
DROP TABLE contacts;
"""

# Each record is stored as its own JSON text, cut out of the body by SQLite: cheaper than
# re-serialising every record in Python. The decoder below refuses what SQLite could read
# differently from Python (duplicate keys, NaN), so stored and validated records agree.
_RECORD_TEXTS = "SELECT value FROM json_each(?, '$.records') ORDER BY key"
# The audit log is the only table a record is written to: appending keeps a batch's writes on a
# few pages at the end of the file, where keeping a table of current contacts dirtied one page of
# its key index per record (contact ids are random). The current contact is read back as its
# newest row; newer-or-equal wins because an importer may legitimately resend an older snapshot
# of a contact (a retry racing a later run), and that must not roll the contact back.
_CURRENT_CONTACTS = """
SELECT external_id, record_json FROM (
    SELECT external_id, record_json,
           row_number() OVER (PARTITION BY external_id ORDER BY changed_at DESC, id DESC) AS newness
    FROM imports WHERE account = ?
)
WHERE newness = 1
ORDER BY external_id
"""
_INSERT_IMPORT = """
INSERT INTO imports (account, external_id, changed_at, idempotency_key, correlation_id, received_at, record_json)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in object")
    return obj


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constants)

log = logging.getLogger(__name__)


@dataclass
class ContactsFaults:
    """Misbehaviour to inject; mutable while the simulator runs.

    Faults hit only authenticated import requests, so a test's burst is never eaten by a request
    that was going to fail anyway, and the admin endpoints stay reliable for assertions.
    """

    error_rate: float = 0.0
    """Fraction of import requests answered 503 before anything is applied (seeded, repeatable)."""
    burst_503: int = 0
    """The next N import requests are answered 503 before anything is applied."""
    burst_429: int = 0
    """The next N import requests are answered 429, without Retry-After, so clients' own backoff runs."""
    delay_s: float = 0.0
    """Sleep before handling every import request, to exercise client timeouts and overlapping requests."""
    lose_response: int = 0
    """The next N import requests are applied and committed, then the connection is dropped unanswered."""
    reject_email_domains: list[str] = field(default_factory=list)
    """Records whose email ends with "@<domain>" are rejected individually."""
    reject_external_ids: list[str] = field(default_factory=list)
    """These external_ids are rejected individually."""
    seed: int = 7


_ADDRESS_PART = r"[!-?\[-~]+"
"""Printable ASCII but "@" and A-Z: lower-case by construction, so no Python call asks."""


class _PlainRecord(TypedDict):
    """A record that plainly meets the contract, in a schema pydantic-core checks in one call per batch.

    Stricter than `_record_problem` (ASCII emails only, digits only in ASCII), never looser: it
    only chooses which way a batch is judged. A batch it refuses goes to the exact checks, which
    decide and name each problem, so the answers and their texts are the contract's alone.
    """

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]

    external_id: Annotated[str, StringConstraints(min_length=1)]
    email: Annotated[str, StringConstraints(pattern=f"^{_ADDRESS_PART}@{_ADDRESS_PART}$")]
    first_name: str | None
    last_name: str | None
    status: Literal[tuple(sorted(STATUSES))]  # type: ignore[valid-type]
    list_id: Annotated[str, StringConstraints(min_length=1)]
    changed_at: Annotated[
        str,
        GetPydanticSchema(
            lambda _source, _handler: core_schema.chain_schema(
                [
                    core_schema.str_schema(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"),
                    core_schema.datetime_schema(strict=False),
                ]
            )
        ),
    ]
    tags: NotRequired[list[str]]
    language: NotRequired[str | None]
    vip: NotRequired[bool]


_ID_AND_LIST = operator.itemgetter("external_id", "list_id")
_PLAIN_RECORDS = TypeAdapter(list[_PlainRecord])


def _plainly_acceptable(records: list[Any]) -> bool:
    """Whether every record meets the contract, asked in pydantic-core rather than record by record.

    What the schema cannot say, that an id starts with its own list's id, is the one check left to
    Python, and it builds no problem's text.
    """
    try:
        _PLAIN_RECORDS.validate_python(records)
    except ValidationError:
        return False
    return all(_is_member_of(external_id, list_id) for external_id, list_id in map(_ID_AND_LIST, records))


def _is_member_of(external_id: str, list_id: str) -> bool:
    """Whether the id reads '<list_id>:<member id>', with a member id."""
    return external_id.startswith(f"{list_id}:") and len(external_id) > len(list_id) + 1


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(status: int, message: str) -> Response:
    return Response.json(status, {"error": message})


def _is_optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str) or not _CHANGED_AT.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value[:-1])
    except ValueError:
        return False
    return True


def _record_problem(record: dict[str, Any]) -> str | None:
    """Why the contract refuses this record, or None; only the first problem is reported."""
    keys = record.keys()
    if not keys >= _REQUIRED_SET:
        return f"missing field {next(name for name in _REQUIRED_FIELDS if name not in record)}"
    if not keys <= _KNOWN_FIELDS:
        return f"unknown field {min(keys - _KNOWN_FIELDS)}"
    external_id, email, list_id = record["external_id"], record["email"], record["list_id"]
    if not isinstance(external_id, str) or not external_id:
        return "external_id must be a non-empty string"
    if not isinstance(email, str):
        return "email must be a string"
    if email != email.lower():
        return "email must be lower-case"
    if not _EMAIL.fullmatch(email):
        return f"invalid email {email!r}"
    for name in ("first_name", "last_name"):
        if not _is_optional_str(record[name]):
            return f"{name} must be a string or null"
    if record["status"] not in STATUSES:
        return f"invalid status {record['status']!r}"
    if not isinstance(list_id, str) or not list_id:
        return "list_id must be a non-empty string"
    if not _is_member_of(external_id, list_id):
        return "external_id must be '<list_id>:<member id>'"
    if not _is_timestamp(record["changed_at"]):
        return "changed_at must be 'YYYY-MM-DDTHH:MM:SSZ'"
    tags = record.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return "tags must be a list of strings"
    if not _is_optional_str(record.get("language")):
        return "language must be a string or null"
    if not isinstance(record.get("vip", False), bool):
        return "vip must be a boolean"
    return None


def _rule_problem(record: dict[str, Any], blocked_domains: set[str], blocked_ids: set[str]) -> str | None:
    """The configured rejections, checked only on records the contract itself accepts."""
    domain = record["email"].rpartition("@")[2]
    if domain in blocked_domains:
        return f"email domain {domain} is blocked"
    if record["external_id"] in blocked_ids:
        return "rejected by rule"
    return None


def _judge(records: list[dict[str, Any]], faults: ContactsFaults) -> tuple[list[int], list[dict[str, Any]]]:
    """Indexes of the accepted records, and the rejections as the response reports them."""
    plain = _plainly_acceptable(records)
    blocked_domains = {domain.lower() for domain in faults.reject_email_domains}
    blocked_ids = set(faults.reject_external_ids)
    if plain and not blocked_domains and not blocked_ids:
        return list(range(len(records))), []
    accepted: list[int] = []
    rejected: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        reason = (None if plain else _record_problem(record)) or _rule_problem(record, blocked_domains, blocked_ids)
        if reason is None:
            accepted.append(index)
            continue
        external_id = record.get("external_id")
        rejected.append(
            {"index": index, "external_id": external_id if isinstance(external_id, str) else None, "reason": reason}
        )
    return accepted, rejected


def _merge_faults(faults: ContactsFaults, changes: Any) -> str | None:
    """Apply admin changes in place (callers may hold a reference); returns an error or None."""
    if not isinstance(changes, dict):
        return "body must be a JSON object"
    defaults = ContactsFaults()
    validated: dict[str, Any] = {}
    for name, value in changes.items():
        if not hasattr(defaults, name):
            return f"unknown fault {name}"
        expected = type(getattr(defaults, name))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, expected):
            return f"{name} must be {expected.__name__}"
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            return f"{name} must be a list of strings"
        if name != "seed" and not isinstance(value, list) and value < 0:
            return f"{name} must not be negative"
        validated[name] = value
    for name, value in validated.items():
        setattr(faults, name, value)
    return None


class ContactsSimulator:
    """The Contacts API on 127.0.0.1, backed by SQLite, with injectable faults."""

    def __init__(
        self,
        api_key: str,
        db_path: str | Path | None = None,
        faults: ContactsFaults | None = None,
        port: int = 0,
    ):
        self._api_key = api_key
        self._faults = faults or ContactsFaults()
        self._rng = random.Random()
        self._rng_seed: int | None = None
        self._fault_lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._account_reads: list[str] = []
        self._requests_lock = threading.Lock()
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if db_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="contacts-sim-")
            db_path = Path(self._tmpdir.name) / "contacts.sqlite3"
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db_lock = threading.Lock()
        # Per account: the last audit row counted, and the distinct ids up to it.
        self._contact_ids: dict[str, tuple[int, set[str]]] = {}
        # A batch is one commit; without fsync it still survives the simulator being killed or
        # restarted (the OS holds the pages), and only an OS crash could lose it, which no test or
        # demo depends on.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'contacts'").fetchone():
            self._db.executescript(f"BEGIN; {_FROM_CONTACTS_TABLE} COMMIT;")
        self._admin_routes: dict[str, dict[str, Callable[[Request], Response]]] = {
            "/_sim/faults": {"GET": self._get_faults, "POST": self._post_faults},
            "/_sim/faults/reset": {"POST": self._reset_faults},
            "/_sim/reset": {"POST": self._reset},
        }
        self._server = SimulatorServer(self._handle, port=port)

    @property
    def faults(self) -> ContactsFaults:
        return self._faults

    @faults.setter
    def faults(self, faults: ContactsFaults) -> None:
        self._faults = faults
        self._rng_seed = None

    @property
    def base_url(self) -> str:
        return self._server.root_url

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> ContactsSimulator:
        self._server.start()
        return self

    def serve_forever(self) -> None:
        """Block in the calling thread until Ctrl-C, then release the port and the database."""
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        self._server.stop()
        with self._db_lock:
            self._db.close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    def __enter__(self) -> ContactsSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def contacts(self, account: str) -> dict[str, dict[str, Any]]:
        rows = self._query(_CURRENT_CONTACTS, (account,))
        return {external_id: json.loads(record_json) for external_id, record_json in rows}

    def imports(self, account: str) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT external_id, changed_at, idempotency_key, correlation_id, received_at"
            " FROM imports WHERE account = ? ORDER BY id",
            (account,),
        )
        names = ("external_id", "changed_at", "idempotency_key", "correlation_id", "received_at")
        return [dict(zip(names, row)) for row in rows]

    def import_counts(self, account: str) -> Counter[str]:
        rows = self._query(
            "SELECT external_id, COUNT(*) FROM imports WHERE account = ? GROUP BY external_id",
            (account,),
        )
        return Counter(dict(rows))

    def requests(self) -> list[dict[str, Any]]:
        """Import requests in completion order; credentials are deliberately never recorded."""
        with self._requests_lock:
            return [dict(entry) for entry in self._requests]

    def account_reads(self) -> list[str]:
        """The accounts read with `GET /v1/accounts/{account}` and a valid key, in order."""
        with self._requests_lock:
            return list(self._account_reads)

    def reset(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM imports")
            db.execute("DELETE FROM idempotency")
            self._contact_ids.clear()
        with self._requests_lock:
            self._requests.clear()
            self._account_reads.clear()

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _handle(self, request: Request) -> Response:
        try:
            return self._route(request)
        except Exception:
            log.exception("contacts simulator failed on %s %s", request.method, request.path)
            return _error(500, "internal simulator error")

    def _route(self, request: Request) -> Response:
        methods: dict[str, Callable[[Request], Response]]
        if match := _IMPORT_PATH.fullmatch(request.path):
            account = unquote(match.group(1))
            methods = {"POST": lambda r: self._import(r, account)}
        elif match := _ACCOUNT_PATH.fullmatch(request.path):
            account = unquote(match.group(1))
            methods = {"GET": lambda r: self._get_account(r, account)}
        elif match := _ADMIN_ACCOUNT_PATH.fullmatch(request.path):
            account, table = unquote(match.group(1)), match.group(2)
            methods = {"GET": lambda r: self._get_account_table(account, table)}
        elif request.path in self._admin_routes:
            methods = self._admin_routes[request.path]
        else:
            return _error(404, f"no such endpoint {request.path}")
        handler = methods.get(request.method)
        if handler is None:
            return _error(405, f"{request.method} is not allowed on {request.path}")
        return handler(request)

    def _get_account(self, request: Request, account: str) -> Response:
        """The cheapest authenticated call: how a client checks its key when it has nothing to send."""
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        with self._requests_lock:
            self._account_reads.append(account)
        return Response.json(200, {"account": account, "contacts": self._count_contacts(account)})

    def _count_contacts(self, account: str) -> int:
        """Distinct contacts, from the audit rows added since this account was last counted.

        A count over the whole log would make the cheapest call scan a million rows on every run;
        the ids seen so far are kept instead, and only read for accounts that are asked about.
        """
        with self._db_lock:
            counted_up_to, ids = self._contact_ids.get(account, (0, set()))
            [(newest,)] = self._db.execute("SELECT coalesce(max(id), 0) FROM imports").fetchall()
            ids.update(
                external_id
                for (external_id,) in self._db.execute(
                    "SELECT external_id FROM imports WHERE id > ? AND account = ?", (counted_up_to, account)
                )
            )
            self._contact_ids[account] = (newest, ids)
            return len(ids)

    def _get_account_table(self, account: str, table: str) -> Response:
        if table == "contacts":
            return Response.json(200, {"contacts": self.contacts(account)})
        return Response.json(200, {"imports": self.imports(account)})

    def _get_faults(self, request: Request) -> Response:
        return Response.json(200, dataclasses.asdict(self.faults))

    def _post_faults(self, request: Request) -> Response:
        try:
            changes = request.json()
        except ValueError:
            return _error(400, "body is not valid JSON")
        with self._fault_lock:
            problem = _merge_faults(self.faults, changes)
            if problem is None and "seed" in changes:
                self._rng_seed = None
        if problem is not None:
            return _error(400, problem)
        return self._get_faults(request)

    def _reset_faults(self, request: Request) -> Response:
        with self._fault_lock:
            _merge_faults(self.faults, dataclasses.asdict(ContactsFaults()))
            self._rng_seed = None
        return self._get_faults(request)

    def _reset(self, request: Request) -> Response:
        self.reset()
        return Response.json(200, {"reset": True})

    def _consume(self, name: str) -> bool:
        with self._fault_lock:
            remaining = getattr(self.faults, name)
            if remaining <= 0:
                return False
            setattr(self.faults, name, remaining - 1)
            return True

    def _random_failure(self) -> bool:
        with self._fault_lock:
            faults = self.faults
            if faults.error_rate <= 0:
                return False
            if self._rng_seed != faults.seed:
                self._rng.seed(faults.seed)
                self._rng_seed = faults.seed
            return self._rng.random() < faults.error_rate

    def _import(self, request: Request, account: str) -> Response:
        entry: dict[str, Any] = {
            "account": account,
            "idempotency_key": request.headers.get("Idempotency-Key"),
            "correlation_id": request.headers.get("X-Correlation-ID"),
            "status": None,
            "records": None,
            "replayed": False,
            "response_lost": False,
        }
        response = self._gate(request)
        if response is None:
            response = self._apply(request, account, entry)
            if self._consume("lose_response"):
                entry["response_lost"] = True
                response = Response(response.status, drop_connection=True)
        entry["status"] = response.status
        with self._requests_lock:
            self._requests.append(entry)
        return response

    def _authenticate(self, request: Request) -> Response | None:
        authorization = request.headers.get("Authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self._api_key.encode()):
            response = _error(401, "invalid or missing API key")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return None

    def _gate(self, request: Request) -> Response | None:
        """Authentication, then the faults that strike before any work is done.

        Sleeping here, outside every lock, lets slow requests overlap as they would on a real server.
        """
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        delay_s = self.faults.delay_s
        if delay_s > 0:
            time.sleep(delay_s)
        if self._consume("burst_503") or self._random_failure():
            return _error(503, "service unavailable, retry later")
        if self._consume("burst_429"):
            return _error(429, "too many requests, retry later")
        return None

    def _apply(self, request: Request, account: str, entry: dict[str, Any]) -> Response:
        key = entry["idempotency_key"]
        if not key:
            return _error(400, "missing Idempotency-Key header")
        content_type = request.headers.get("Content-Type") or ""
        if content_type.split(";")[0].strip().lower() != "application/json":
            return _error(400, "Content-Type must be application/json")
        try:
            body = request.body.decode("utf-8")
            payload = _DECODER.decode(body)
        except ValueError as exc:
            return _error(400, f"body is not valid JSON: {exc}")
        records = payload.get("records") if isinstance(payload, dict) else None
        if not isinstance(records, list):
            return _error(400, 'body must be an object with a "records" list')
        entry["records"] = len(records)
        if not 1 <= len(records) <= MAX_RECORDS_PER_REQUEST:
            return _error(400, f"records must hold 1 to {MAX_RECORDS_PER_REQUEST} items, got {len(records)}")
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                return _error(400, f"records[{index}] is not an object")

        accepted, rejected = _judge(records, self.faults)
        response_json = json.dumps({"accepted": len(accepted), "rejected": rejected})
        body_sha256 = hashlib.sha256(request.body).hexdigest()
        now = _utc_now()
        correlation_id = entry["correlation_id"]
        with self._transaction() as db:
            stored = db.execute(
                "SELECT body_sha256, response_json FROM idempotency WHERE account = ? AND key = ?",
                (account, key),
            ).fetchone()
            if stored is None:
                texts = [text for (text,) in db.execute(_RECORD_TEXTS, (body,))]
                db.executemany(
                    _INSERT_IMPORT,
                    [
                        (account, records[i]["external_id"], records[i]["changed_at"], key, correlation_id, now, texts[i])
                        for i in accepted
                    ],
                )
                db.execute(
                    "INSERT INTO idempotency (account, key, body_sha256, response_json) VALUES (?, ?, ?, ?)",
                    (account, key, body_sha256, response_json),
                )
        if stored is None:
            return Response(200, response_json.encode())
        if stored[0] != body_sha256:
            return _error(409, "Idempotency-Key was already used with a different request body")
        entry["replayed"] = True
        return Response(200, stored[1].encode())


def serve(argv: list[str] | None = None) -> None:
    """Run the simulator in the foreground for the demo, on a fixed port and a persistent file."""
    parser = argparse.ArgumentParser(description="Contacts API simulator (local only).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--db", type=Path, default=Path(".demo") / "contacts.sqlite3")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CONTACTS_API_KEY") or DEMO_API_KEY,
        help="bearer key clients must send (default: $CONTACTS_API_KEY or the demo key)",
    )
    args = parser.parse_args(argv)
    args.db.parent.mkdir(parents=True, exist_ok=True)
    simulator = ContactsSimulator(args.api_key, db_path=args.db, port=args.port)
    print(f"Contacts API simulator on {simulator.base_url}", flush=True)
    simulator.serve_forever()
