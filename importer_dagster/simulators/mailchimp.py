"""A Mailchimp Marketing API v3 look-alike that the importer's tests, demo and benchmarks talk to.

The importer is only as good as its handling of Mailchimp's awkward corners: offset pagination over a
set that changes during the scan, undocumented window bounds, timezone offsets that are silently
ignored, a 10-connection limit per key, empty-bodied 403s from the edge, malformed pages and members.
This simulator reproduces those faithfully (it never protects the client from them) so the importer
can be proven against them without ever leaving the machine.

Members are never materialised: everything about member ``i`` of a list derives from a hash of
(world seed, list id, i), so a million-member list costs a few arrays (last_changed, status, a sorted
index) and a page is generated from those at serve time. Only edits ("touches") are stored.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import hashlib
import json
import random
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

import numpy as np

from importer_dagster.simulators.server import Request, Response, SimulatorServer

ERROR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
PROBLEM_JSON = "application/problem+json; charset=utf-8"
JSON = "application/json; charset=utf-8"
MAX_COUNT = 1000
_HOLD_POLL_S = 0.05
"""How often a held page looks whether it may be answered."""
BOUNDS = ("exclusive-inclusive", "inclusive-exclusive")
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived")
_STATUS_WEIGHTS = (0.80, 0.10, 0.04, 0.03, 0.02, 0.01)
_STATUS_CODE = {name: code for code, name in enumerate(STATUSES)}
SORT_FIELDS = ("last_changed", "timestamp_opt", "timestamp_signup")
ODD_UNICODE_FNAME = "Zoë \u200b\U0001f600 Ñandú"

ACME_KEY = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6-us6"
GLOBEX_KEY = "f0e1d2c3b4a5968778695a4b3c2d1e0f-us19"
DEMO_KEYS = {"MAILCHIMP_KEY_ACME": ACME_KEY, "MAILCHIMP_KEY_GLOBEX": GLOBEX_KEY}

_LIST_ID = re.compile(r"[0-9a-f]{10}")
_WALL_CLOCK = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)


@dataclass
class SimList:
    id: str
    name: str
    members: int
    archived: bool = False
    """An archived list behaves as deleted: gone from GET /lists and 404 everywhere else."""

    def __post_init__(self) -> None:
        if not _LIST_ID.fullmatch(self.id):
            raise ValueError(f"list id must be 10 lowercase hex characters, got {self.id!r}")
        if self.members < 0:
            raise ValueError("members must be >= 0")


@dataclass
class SimAccount:
    api_key: str
    lists: list[SimList]


@dataclass
class MailchimpFaults:
    error_rate: float = 0.0
    burst_429: int = 0
    bodyless_403: int = 0
    page_delay_s: float = 0.0
    slow_pages: int = 0
    slow_page_s: float = 30.0
    malformed_json: int = 0
    malformed_member_rate: float = 0.0
    touch_after_page: int = 0
    hold_pages: bool = False
    """While set, member pages wait to be answered: a test holds them until every run it started
    is under way, so the runs page at the same time whatever each one's start-up takes."""


@dataclass
class MailchimpWorld:
    accounts: list[SimAccount]
    seed: int = 42
    now: datetime | None = None
    history_hours: int = 48
    max_connections: int = 10
    bounds: str = "exclusive-inclusive"
    """Mailchimp does not document whether since/before are inclusive; the importer must work with both."""

    def __post_init__(self) -> None:
        now = self.now or datetime.now(timezone.utc)
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        self.now = now.astimezone(timezone.utc).replace(microsecond=0)
        if self.history_hours < 1:
            raise ValueError("history_hours must be >= 1")
        if self.bounds not in BOUNDS:
            raise ValueError(f"bounds must be one of {BOUNDS}")
        ids = [lst.id for account in self.accounts for lst in account.lists]
        if len(ids) != len(set(ids)):
            raise ValueError("list ids must be unique across accounts")


def member_id_for(email: str) -> str:
    """Mailchimp's subscriber hash: how a member is addressed in URLs and identified across pages."""
    return hashlib.md5(email.lower().encode()).hexdigest()


def demo_world(now: datetime | None = None) -> MailchimpWorld:
    return MailchimpWorld(
        accounts=[
            SimAccount(
                ACME_KEY,
                [SimList("1a2d7ebf82", "Acme Newsletter", 5000), SimList("7c9e6679e1", "Acme Customers", 800)],
            ),
            SimAccount(GLOBEX_KEY, [SimList("b2c3d4e5f6", "Globex Weekly", 2000)]),
        ],
        now=now,
    )


def fleet_key(account: int) -> str:
    return f"{account:032x}-us1"


def fleet_world(accounts: int, lists_per_account: int, members: int, now: datetime | None = None) -> MailchimpWorld:
    """Many clients with many lists, for the hourly-tick benchmark: account i has key `fleet_key(i)`.

    Members' changes are spread evenly over the world's 48 hours of history, so a list of
    2,400 members has about 50 changed in each hourly window.
    """
    return MailchimpWorld(
        accounts=[
            SimAccount(
                fleet_key(account),
                [
                    SimList(f"{account * lists_per_account + index:010x}", f"Fleet {account} list {index}", members)
                    for index in range(lists_per_account)
                ],
            )
            for account in range(accounts)
        ],
        now=now,
    )


def _slug(name: str) -> str:
    ascii_only = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", ascii_only.lower())


_FIRST_NAMES = tuple(
    (name, _slug(name))
    for name in (
        "Jane", "John", "Maria", "Ahmed", "Wei", "Olivia", "Liam", "Emma", "Noah", "Sophia", "Lucas", "Mia",
        "José", "Zoë", "Renée", "Søren", "Chloé", "François", "Björn", "Aoife", "Priya", "Kenji", "Fatima",
        "Mateo", "Ingrid", "Chidi", "Anouk", "Dmitri", "Leila", "Tomás", "Hana", "Oskar", "Amara", "Yusuf",
    )
)
_LAST_NAMES = tuple(
    (name, _slug(name))
    for name in (
        "Doe", "Smith", "Müller", "García", "Nguyen", "O'Brien", "Kowalski", "Rossi", "Dubois", "Novak",
        "Johansson", "Tanaka", "Okafor", "Silva", "Cohen", "Jensen", "Martin", "Schmidt", "Ivanova", "Haddad",
        "Fernández", "Lefèvre", "Kim", "Patel", "Brown", "Van der Berg", "Ó Súilleabháin", "Lindqvist",
    )
)
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "acme.example", "post.example")
_EMAIL_PATTERNS: tuple[Callable[[str, str, int], str], ...] = (
    lambda f, l, n: f"{f}.{l}{n}",
    lambda f, l, n: f"{f}{n}",
    lambda f, l, n: f"{f[0]}{l}{n}",
    lambda f, l, n: f"{f}_{l}{n}",
    lambda f, l, n: f"{l}.{f}{n}",
)
_UNSUBSCRIBE_REASONS = (
    "N/A (Unsubscribed by an admin)",
    "I no longer want to receive these emails",
    "I never signed up for this mailing list",
    "The emails are inappropriate",
    "Other",
)
_LANGUAGES = ("en",) * 11 + ("",) * 4 + ("fr",) * 3 + ("de",) * 2
_EMAIL_CLIENTS = ("", "", "Gmail", "Apple Mail", "Outlook", "iPhone", "Yahoo Mail")
_RATINGS = (1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 5)
_LOCATION_KEYS = ("latitude", "longitude", "gmtoff", "dstoff", "country_code", "timezone", "region")
_LOCATIONS = (
    (40.7128, -74.006, -5, -4, "US", "America/New_York", "NY"),
    (48.8566, 2.3522, 1, 2, "FR", "Europe/Paris", "IDF"),
    (52.52, 13.405, 1, 2, "DE", "Europe/Berlin", "BE"),
    (51.5074, -0.1278, 0, 1, "GB", "Europe/London", "ENG"),
    (35.6762, 139.6503, 9, 9, "JP", "Asia/Tokyo", "13"),
    (-33.8688, 151.2093, 10, 11, "AU", "Australia/Sydney", "NSW"),
    (0, 0, 0, 0, "", "", ""),
    (0, 0, 0, 0, "", "", ""),
)
_TAGS = (
    (101, "customer"), (102, "vip-event-2025"), (103, "newsletter"),
    (104, "webinar"), (105, "trial"), (106, "Événement"),
)
_MEMBER_LINKS = (
    ("self", "", "GET", "targetSchema", "Response"),
    ("parent", None, "GET", "targetSchema", "CollectionResponse"),
    ("update", "", "PATCH", "schema", "PATCH"),
    ("upsert", "", "PUT", "schema", "PUT"),
    ("delete", "", "DELETE", "", ""),
    ("activity", "/activity", "GET", "targetSchema", "Activity/Response"),
    ("goals", "/goals", "GET", "targetSchema", "Goals/Response"),
    ("notes", "/notes", "GET", "targetSchema", "Notes/CollectionResponse"),
)
_MALFORMED_KINDS = 5

MEMBER_KEYS = (
    "id", "email_address", "unique_email_id", "contact_id", "full_name", "web_id", "email_type", "status",
    "unsubscribe_reason", "consents_to_one_to_one_messaging", "sms_phone_number", "sms_subscription_status",
    "sms_subscription_last_updated", "merge_fields", "interests", "stats", "ip_signup", "timestamp_signup",
    "ip_opt", "timestamp_opt", "member_rating", "last_changed", "language", "vip", "email_client", "location",
    "marketing_permissions", "last_note", "source", "tags_count", "tags", "list_id", "_links",
)
# One independent hash stream per member attribute; at most 63 of them (see _Columns).
(F_FIRST, F_LAST, F_PATTERN, F_DOMAIN, F_CASE, F_EMPTY, F_STATUS, F_LC, F_TIE, F_TIE_PARTNER, F_SIGNUP, F_OPT,
 F_WEB, F_UEID, F_CONTACT, F_CONTACT2, F_OPENS, F_CLICKS, F_IP, F_MISC, F_LOCATION, F_TAGS, F_MALFORMED, F_HOUR,
 F_UNSUB) = range(1, 26)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection, so distinct (index, field) inputs never collide."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _salt(seed: int, list_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{list_id}".encode()).digest()[:8], "big")


class _Columns:
    """Per-member pseudo-random draws for a set of member indices, computed vectorised and memoised."""

    def __init__(self, salt: int, idx: np.ndarray):
        self.idx = idx
        self._base = idx.astype(np.uint64) * np.uint64(64) + np.uint64(salt)
        self._hashes: dict[int, np.ndarray] = {}

    def hash(self, field_no: int) -> np.ndarray:
        if field_no not in self._hashes:
            self._hashes[field_no] = _mix(self._base + np.uint64(field_no))
        return self._hashes[field_no]

    def uniform(self, field_no: int) -> np.ndarray:
        return (self.hash(field_no) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def below(self, field_no: int, k: int, shift: int = 0) -> np.ndarray:
        return ((self.hash(field_no) >> np.uint64(shift)) % np.uint64(k)).astype(np.int64)


def _iso(epoch_seconds: np.ndarray) -> list[str]:
    return [s + "+00:00" for s in epoch_seconds.astype("datetime64[s]").astype(str).tolist()]


def _epoch(at: datetime) -> int:
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return int(at.timestamp())


def _utc(epoch_seconds: int) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc)


class _ListData:
    """The mutable state of one list: last_changed, status, a sorted index and the stored edits."""

    def __init__(self, sim_list: SimList, seed: int, now: int, history_hours: int):
        self.sim_list = sim_list
        self.list_id = sim_list.id
        self.n = sim_list.members
        self.salt = _salt(seed, sim_list.id)
        self.now = now
        self.email_number_base = 100 + self.salt % 900
        self.mult = max(self.n, 1)
        cols = _Columns(self.salt, np.arange(self.n, dtype=np.int64))
        thresholds = np.cumsum(_STATUS_WEIGHTS)
        drawn = np.searchsorted(thresholds, cols.uniform(F_STATUS), side="right")
        self.status = np.minimum(drawn, len(STATUSES) - 1).astype(np.int8)
        self.lc = self._initial_last_changed(cols, now, history_hours * 3600)
        self.keys = np.sort(self.lc * self.mult + np.arange(self.n, dtype=np.int64))
        self.overrides: dict[int, dict[str, Any]] = {}
        self.version = 0
        self._selection: tuple[tuple[Any, ...], np.ndarray] | None = None
        self._ids: list[str] | None = None
        self._index_of: dict[str, int] | None = None
        self._sort_arrays: dict[str, np.ndarray] = {}

    def _initial_last_changed(self, cols: _Columns, now: int, span: int) -> np.ndarray:
        """Spread over [now - span, now) with the ties that make window bounds and sort order interesting."""
        start = now - span
        lc = start + (cols.uniform(F_LC) * span).astype(np.int64)
        if self.n < 2:
            return lc
        sharers = np.flatnonzero(cols.uniform(F_TIE) < 0.05)
        partners = (sharers + 1 + cols.below(F_TIE_PARTNER, self.n - 1)[sharers]) % self.n
        lc[sharers] = lc[partners]
        first_hour = -(-start // 3600) * 3600
        hours = (now - 1 - first_hour) // 3600 + 1
        on_hour = min(self.n, max(8, self.n // 400))
        picks = np.unique(cols.below(F_HOUR, self.n)[:on_hour])
        pair_hour = cols.below(F_HOUR, hours, shift=32)[: len(picks)]
        lc[picks] = first_hour + 3600 * pair_hour[np.arange(len(picks)) // 2 * 2]
        return lc

    def signup_epoch(self, cols: _Columns) -> np.ndarray:
        """Signed up before the history window, so signup <= opt-in <= last_changed always holds."""
        oldest = self.now - 3 * 365 * 86400
        return oldest + (cols.uniform(F_SIGNUP) * (2 * 365 * 86400)).astype(np.int64)

    def opt_epoch(self, cols: _Columns) -> np.ndarray:
        return self.signup_epoch(cols) + (cols.uniform(F_OPT) * 3600).astype(np.int64)

    def sort_array(self, sort_field: str) -> np.ndarray:
        if sort_field not in self._sort_arrays:
            cols = _Columns(self.salt, np.arange(self.n, dtype=np.int64))
            make = self.signup_epoch if sort_field == "timestamp_signup" else self.opt_epoch
            self._sort_arrays[sort_field] = make(cols)
        return self._sort_arrays[sort_field]

    def select(self, since: int | None, before: int | None, status: int | None, sort_field: str | None,
               descending: bool, bounds: str) -> np.ndarray:
        """Member indices matching the filters, in response order; memoised until the list next changes."""
        cache_key = (self.version, since, before, status, sort_field, descending, bounds)
        if self._selection and self._selection[0] == cache_key:
            return self._selection[1]
        lo, hi = 0, len(self.keys)
        if since is not None:
            first = since + 1 if bounds == "exclusive-inclusive" else since
            lo = int(np.searchsorted(self.keys, first * self.mult))
        if before is not None:
            end = before + 1 if bounds == "exclusive-inclusive" else before
            hi = max(lo, int(np.searchsorted(self.keys, end * self.mult)))
        if sort_field == "last_changed":
            idx = self.keys[lo:hi] % self.mult
        elif since is None and before is None:
            idx = np.arange(self.n, dtype=np.int64)
        else:
            idx = np.sort(self.keys[lo:hi] % self.mult)
        if status is not None:
            idx = idx[self.status[idx] == status]
        if sort_field in ("timestamp_opt", "timestamp_signup"):
            idx = idx[np.lexsort((idx, self.sort_array(sort_field)[idx]))]
        if descending:
            idx = idx[::-1]
        self._selection = (cache_key, idx)
        return idx

    def set_last_changed(self, indices: np.ndarray, at: int) -> None:
        """Delete-and-insert into the sorted index so it stays exact without a full re-sort."""
        indices = np.unique(indices)
        old = np.sort(self.lc[indices] * self.mult + indices)
        kept = np.delete(self.keys, np.searchsorted(self.keys, old))
        new = np.sort(at * self.mult + indices)
        self.keys = np.insert(kept, np.searchsorted(kept, new), new)
        self.lc[indices] = at
        self.version += 1

    def ids(self, idx: np.ndarray) -> list[str]:
        if self._ids is not None:
            return [self._ids[i] for i in idx.tolist()]
        return [member_id_for(email) for email in _identity(self, _Columns(self.salt, idx))[2]]

    def all_ids(self) -> list[str]:
        if self._ids is None:
            self._ids = self.ids(np.arange(self.n, dtype=np.int64))
        return self._ids

    def index_of(self, member_id: str) -> int:
        if self._index_of is None:
            self._index_of = {mid: i for i, mid in enumerate(self.all_ids())}
        try:
            return self._index_of[member_id]
        except KeyError:
            raise KeyError(f"member {member_id} not in list {self.list_id}") from None


def _identity(data: _ListData, cols: _Columns) -> tuple[list[str], list[str], list[str]]:
    """FNAME, LNAME and the email as served; the email embeds the member index, so it is unique."""
    first = cols.below(F_FIRST, len(_FIRST_NAMES)).tolist()
    last = cols.below(F_LAST, len(_LAST_NAMES)).tolist()
    pattern = cols.below(F_PATTERN, len(_EMAIL_PATTERNS)).tolist()
    domain = cols.below(F_DOMAIN, len(_DOMAINS)).tolist()
    case = cols.uniform(F_CASE).tolist()
    empty = cols.below(F_EMPTY, 100).tolist()
    numbers = (cols.idx + data.email_number_base).tolist()
    fnames, lnames, emails = [], [], []
    for fi, li, pi, di, c, e, number in zip(first, last, pattern, domain, case, empty, numbers):
        fname, fslug = _FIRST_NAMES[fi]
        lname, lslug = _LAST_NAMES[li]
        dom = _DOMAINS[di]
        if c < 0.8:
            local = _EMAIL_PATTERNS[pi](fslug, lslug, number)
        elif c < 0.95:
            local = _EMAIL_PATTERNS[pi](fslug.capitalize(), lslug.capitalize(), number)
            dom = dom.capitalize()
        else:
            local = _EMAIL_PATTERNS[pi](fslug, lslug, number).upper()
        fnames.append("" if e < 5 else fname)
        lnames.append("" if 5 <= e < 9 else lname)
        emails.append(f"{local}@{dom}")
    return fnames, lnames, emails


class _MemberPage:
    """Builds the member objects for a page, computing only the columns the response will keep."""

    def __init__(self, data: _ListData, idx: np.ndarray, lc: np.ndarray, status: np.ndarray,
                 overrides: dict[int, dict[str, Any]]):
        self.data = data
        self.idx = idx
        self.lc = lc
        self.status_names = [STATUSES[s] for s in status.tolist()]
        self.overrides = overrides
        self.cols = _Columns(data.salt, idx)
        self.count = len(idx)
        self._identity: tuple[list[str], list[str], list[str]] | None = None

    def identity(self) -> tuple[list[str], list[str], list[str]]:
        if self._identity is None:
            self._identity = _identity(self.data, self.cols)
        return self._identity

    def build(self, tree: dict[str, Any] | None, malformed_rate: float) -> list[dict[str, Any]]:
        """`tree` is the `fields` selection within a member (None: everything); unselected keys are never built."""
        wanted = [k for k in MEMBER_KEYS if tree is None or k in tree]
        columns = [self.column(k) for k in wanted]
        members = [dict(zip(wanted, row)) for row in zip(*columns)] if wanted else [{} for _ in range(self.count)]
        if "unsubscribe_reason" in wanted:
            for member, status in zip(members, self.status_names):
                if status != "unsubscribed":
                    del member["unsubscribe_reason"]
        for j, override in self.overrides.items():
            self._apply_override(members[j], j, override)
        if malformed_rate > 0:
            for j in np.flatnonzero(self.cols.uniform(F_MALFORMED) < malformed_rate).tolist():
                self._malform(members[j], j)
        for key, subtree in (tree or {}).items():
            if subtree is not None:
                for member in members:
                    if key in member:
                        member[key] = _include(member[key], subtree)
        return members

    def _names(self, j: int, merge_fields: Mapping[str, Any]) -> str:
        fnames, lnames, _ = self.identity()
        return f"{merge_fields.get('FNAME', fnames[j])} {merge_fields.get('LNAME', lnames[j])}".strip()

    def _apply_override(self, member: dict[str, Any], j: int, override: dict[str, Any]) -> None:
        merge_updates = override.get("merge_fields")
        if merge_updates:
            if "merge_fields" in member:
                member["merge_fields"].update(merge_updates)
            if "full_name" in member:
                member["full_name"] = self._names(j, merge_updates)
        if "stats" in override and "stats" in member:
            member["stats"] = dict(override["stats"])

    def _malform(self, member: dict[str, Any], j: int) -> None:
        """Cycles through the kinds of bad data seen in real exports; id and list_id always survive."""
        kind = int(self.idx[j]) % _MALFORMED_KINDS
        if kind == 0 and "email_address" in member:
            member["email_address"] = "not-an-email"
        elif kind == 1:
            member.pop("email_address", None)
        elif kind == 2 and "status" in member:
            member["status"] = "zombie"
        elif kind == 3:
            if "merge_fields" in member:
                member["merge_fields"]["FNAME"] = ODD_UNICODE_FNAME
            if "full_name" in member:
                edited = self.overrides.get(j, {}).get("merge_fields", {})
                member["full_name"] = self._names(j, {**edited, "FNAME": ODD_UNICODE_FNAME})
        elif kind == 4:
            member.pop("last_changed", None)

    def column(self, key: str) -> list[Any]:
        cols, n = self.cols, self.count
        if key == "id":
            return [member_id_for(email) for email in self.identity()[2]]
        if key == "email_address":
            return self.identity()[2]
        if key == "unique_email_id":
            return [f"{h >> 24:010x}" for h in cols.hash(F_UEID).tolist()]
        if key == "contact_id":
            return [f"{a:016x}{b:016x}" for a, b in zip(cols.hash(F_CONTACT).tolist(), cols.hash(F_CONTACT2).tolist())]
        if key == "full_name":
            fnames, lnames, _ = self.identity()
            return [f"{f} {l}".strip() for f, l in zip(fnames, lnames)]
        if key == "web_id":
            return [w + 100_000_000 for w in cols.below(F_WEB, 900_000_000).tolist()]
        if key == "status":
            return self.status_names
        if key == "unsubscribe_reason":
            return [_UNSUBSCRIBE_REASONS[r] for r in cols.below(F_UNSUB, len(_UNSUBSCRIBE_REASONS)).tolist()]
        if key == "merge_fields":
            fnames, lnames, _ = self.identity()
            return [{"FNAME": f, "LNAME": l, "ADDRESS": "", "PHONE": "", "BIRTHDAY": ""}
                    for f, l in zip(fnames, lnames)]
        if key == "stats":
            opens = cols.uniform(F_OPENS)
            clicks = opens * cols.uniform(F_CLICKS)
            return [{"avg_open_rate": o, "avg_click_rate": c}
                    for o, c in zip(np.round(opens, 2).tolist(), np.round(clicks, 2).tolist())]
        if key in ("ip_signup", "ip_opt"):
            octets = cols.below(F_IP, 254, shift=0 if key == "ip_signup" else 8).tolist()
            present = cols.below(F_IP, 10, shift=16 if key == "ip_signup" else 24).tolist()
            net = "198.51.100" if key == "ip_signup" else "203.0.113"
            return [f"{net}.{o + 1}" if p >= 2 else "" for o, p in zip(octets, present)]
        if key == "timestamp_signup":
            return _iso(self.data.signup_epoch(cols))
        if key == "timestamp_opt":
            return _iso(self.data.opt_epoch(cols))
        if key == "member_rating":
            return [_RATINGS[r] for r in cols.below(F_MISC, len(_RATINGS), shift=24).tolist()]
        if key == "last_changed":
            return _iso(self.lc)
        if key == "language":
            return [_LANGUAGES[r] for r in cols.below(F_MISC, len(_LANGUAGES)).tolist()]
        if key == "vip":
            return [r < 2 for r in cols.below(F_MISC, 100, shift=8).tolist()]
        if key == "email_client":
            return [_EMAIL_CLIENTS[r] for r in cols.below(F_MISC, len(_EMAIL_CLIENTS), shift=16).tolist()]
        if key == "location":
            return [dict(zip(_LOCATION_KEYS, _LOCATIONS[r])) for r in cols.below(F_LOCATION, len(_LOCATIONS)).tolist()]
        if key == "tags":
            return [[{"id": tag_id, "name": name} for tag_id, name in tags] for tags in self._tags()]
        if key == "tags_count":
            return [len(tags) for tags in self._tags()]
        if key == "list_id":
            return [self.data.list_id] * n
        if key == "_links":
            return [self._links(member_id) for member_id in self.column("id")]
        return [_CONSTANT_MEMBER_FIELDS[key]() for _ in range(n)]

    def _tags(self) -> list[list[tuple[int, str]]]:
        how_many = self.cols.below(F_TAGS, 4).tolist()
        first = self.cols.below(F_TAGS, len(_TAGS), shift=8).tolist()
        return [[_TAGS[(f + t) % len(_TAGS)] for t in range(k)] for k, f in zip(how_many, first)]

    def _links(self, member_id: str) -> list[dict[str, str]]:
        """Root-relative hrefs: nothing in a page points off the machine, and pages stay port-independent."""
        base = f"/3.0/lists/{self.data.list_id}/members"
        links = []
        for rel, suffix, method, schema_key, schema in _MEMBER_LINKS:
            href = base if suffix is None else f"{base}/{member_id}{suffix}"
            link = {"rel": rel, "href": href, "method": method}
            if schema_key:
                link[schema_key] = f"/schema/3.0/Definitions/Lists/Members/{schema}.json"
            links.append(link)
        return links


_CONSTANT_MEMBER_FIELDS: dict[str, Callable[[], Any]] = {
    "email_type": lambda: "html",
    "consents_to_one_to_one_messaging": lambda: True,
    "sms_phone_number": lambda: "",
    "sms_subscription_status": lambda: "",
    "sms_subscription_last_updated": lambda: "",
    "interests": dict,
    "marketing_permissions": list,
    "last_note": dict,
    "source": lambda: "API - Generic",
}


def _parse_paths(spec: str) -> dict[str, Any]:
    """Dotted field paths as a tree; None marks a leaf, which wins over any deeper path."""
    tree: dict[str, Any] = {}
    for path in spec.split(","):
        *parents, leaf = [p for p in path.strip().split(".") if p] or [""]
        node = tree
        for part in parents:
            if part in node and node[part] is None:
                break
            node = node.setdefault(part, {})
        else:
            if leaf:
                node[leaf] = None
    return tree


def _include(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: v if tree[k] is None else _include(v, tree[k]) for k, v in value.items() if k in tree}
    if isinstance(value, list):
        return [_include(v, tree) for v in value]
    return value


def _exclude(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: v if k not in tree else _exclude(v, tree[k]) for k, v in value.items()
                if k not in tree or tree[k] is not None}
    if isinstance(value, list):
        return [_exclude(v, tree) for v in value]
    return value


def _wall_clock(value: str) -> int:
    """Mailchimp ignores the offset: '03:00:00+02:00' means 03:00:00 UTC. Fractions are dropped."""
    match = _WALL_CLOCK.fullmatch(value.strip())
    if not match:
        raise ValueError(value)
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    return _epoch(datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc))


def _instant(value: str) -> datetime:
    """ISO 8601 with its offset honoured (unlike the API's filters); 'Z' is accepted on Python 3.10 too."""
    return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)


def _basic_auth_key(headers: Mapping[str, str]) -> str | None:
    scheme, _, credentials = (headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep else None


def _mask(api_key: str) -> str:
    return api_key[:4] + "…"


def _problem(status: int, title: str, detail: str) -> Response:
    request_id = str(uuid.uuid4())
    payload = {"type": ERROR_TYPE, "title": title, "status": status, "detail": detail, "instance": request_id}
    response = Response.json(status, payload, content_type=PROBLEM_JSON)
    response.headers["X-Request-Id"] = request_id
    return response


def _ok(payload: Any) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return Response(200, body, JSON, {"X-Request-Id": str(uuid.uuid4())})


class _ApiError(Exception):
    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


def _bad_request(detail: str) -> _ApiError:
    return _ApiError(_problem(400, "Invalid Resource", detail))


def _not_found() -> _ApiError:
    return _ApiError(_problem(404, "Resource Not Found", "The requested resource could not be found."))


def _int_param(query: Mapping[str, str], name: str, default: int, maximum: int | None = None) -> int:
    raw = query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_request(f"The {name} parameter must be an integer.") from None
    if value < 0:
        raise _bad_request(f"The {name} parameter must not be negative.")
    if maximum is not None and value > maximum:
        raise _bad_request(f"The {name} parameter must be at most {maximum}.")
    return value


def _time_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name, "")
    if raw == "":
        return None
    try:
        return _wall_clock(raw)
    except ValueError:
        raise _bad_request(f"The {name} parameter must be a date in ISO 8601 format.") from None


def _trim(payload: dict[str, Any], query: Mapping[str, str]) -> dict[str, Any]:
    if query.get("fields"):
        payload = _include(payload, _parse_paths(query["fields"]))
    if query.get("exclude_fields"):
        payload = _exclude(payload, _parse_paths(query["exclude_fields"]))
    return payload


_ROUTES = (
    (re.compile(r"/3\.0/ping"), "_get_ping"),
    (re.compile(r"/3\.0/lists"), "_get_lists"),
    (re.compile(r"/3\.0/lists/([^/]+)"), "_get_list"),
    (re.compile(r"/3\.0/lists/([^/]+)/members"), "_get_members"),
    (re.compile(r"/3\.0/lists/([^/]+)/members/([^/]+)"), "_get_member"),
)
_TOUCH_ARGS = frozenset({"member_ids", "count", "merge_fields", "status", "stats_only", "at"})


class MailchimpSimulator:
    """Serves a MailchimpWorld over HTTP on 127.0.0.1, with faults that can be changed while it runs."""

    def __init__(self, world: MailchimpWorld, faults: MailchimpFaults | None = None, port: int = 0):
        self.world = world
        self.faults = faults or MailchimpFaults()
        assert world.now is not None
        self._anchor = _epoch(world.now)
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._rng = random.Random(world.seed)
        self._accounts = {account.api_key: account for account in world.accounts}
        self._owner = {lst.id: account.api_key for account in world.accounts for lst in account.lists}
        self._lists = {
            lst.id: _ListData(lst, world.seed, self._anchor, world.history_hours)
            for account in world.accounts
            for lst in account.lists
        }
        self._in_flight = {key: 0 for key in self._accounts}
        self.max_in_flight: dict[str, int] = {key: 0 for key in self._accounts}
        self.rejected_over_limit: dict[str, int] = {key: 0 for key in self._accounts}
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)
        self._requests_total = 0
        self._server = SimulatorServer(self._handle, port)

    def start(self) -> MailchimpSimulator:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> MailchimpSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        """Where the admin endpoints (`/_sim/...`) live."""
        return self._server.root_url

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/3.0"

    def now(self) -> datetime:
        """The simulated clock: world.now when the simulator was built, advancing in real time since."""
        return _utc(self._now_epoch())

    def _now_epoch(self) -> int:
        return self._anchor + int(time.monotonic() - self._started)

    def _data(self, list_id: str) -> _ListData:
        try:
            return self._lists[list_id]
        except KeyError:
            raise KeyError(f"unknown list {list_id}") from None

    def members_truth(self, list_id: str) -> dict[str, datetime]:
        with self._lock:
            data = self._data(list_id)
            ids = data.all_ids()
            changed = data.lc.tolist()
        return {member_id: _utc(epoch) for member_id, epoch in zip(ids, changed)}

    def member(self, list_id: str, member_id: str) -> dict[str, Any]:
        """As served, including any malformation the current faults apply to this member."""
        with self._lock:
            data = self._data(list_id)
            page = self._snapshot(data, np.array([data.index_of(member_id)], dtype=np.int64))
            rate = self.faults.malformed_member_rate
        return page.build(None, rate)[0]

    def touch(self, list_id: str, member_ids: list[str] | None = None, count: int = 0,
              merge_fields: dict[str, Any] | None = None, status: str | None = None,
              stats_only: bool = False, at: datetime | None = None) -> list[str]:
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        if stats_only and (merge_fields or status):
            raise ValueError("stats_only changes nothing but stats")
        with self._lock:
            data = self._data(list_id)
            if member_ids is not None:
                indices = np.array([data.index_of(m) for m in member_ids], dtype=np.int64)
            else:
                indices = np.arange(min(count, data.n), dtype=np.int64)
            when = _epoch(at) if at is not None else self._now_epoch()
            self._touch_locked(data, indices, when, merge_fields, status, stats_only)
            return data.ids(indices)

    def _touch_locked(self, data: _ListData, indices: np.ndarray, when: int, merge_fields: dict[str, Any] | None,
                      status: str | None, stats_only: bool) -> None:
        if len(indices) == 0:
            return
        if stats_only:
            current = self._snapshot(data, indices).build({"stats": None}, 0.0)
            for i, member in zip(indices.tolist(), current):
                stats = member["stats"]
                data.overrides.setdefault(i, {})["stats"] = {
                    "avg_open_rate": round((stats["avg_open_rate"] + 0.07) % 1.0, 2),
                    "avg_click_rate": stats["avg_click_rate"],
                }
        if merge_fields:
            for i in indices.tolist():
                data.overrides.setdefault(i, {}).setdefault("merge_fields", {}).update(merge_fields)
        if status is not None:
            data.status[indices] = _STATUS_CODE[status]
        data.set_last_changed(indices, when)

    def set_last_changed(self, list_id: str, member_id: str, at: datetime) -> None:
        with self._lock:
            data = self._data(list_id)
            data.set_last_changed(np.array([data.index_of(member_id)], dtype=np.int64), _epoch(at))

    def _snapshot(self, data: _ListData, idx: np.ndarray) -> _MemberPage:
        """Copies what a page needs so it can be built and serialised without holding the lock."""
        overrides = {}
        if data.overrides:
            for j, i in enumerate(idx.tolist()):
                if i in data.overrides:
                    override = data.overrides[i]
                    overrides[j] = {k: dict(v) for k, v in override.items()}
        return _MemberPage(data, idx, data.lc[idx], data.status[idx], overrides)

    def _handle(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        if path.startswith("/_sim/"):
            try:
                return self._admin(request, path)
            except (KeyError, ValueError, TypeError) as exc:
                status = 404 if isinstance(exc, KeyError) else 400
                return Response.json(status, {"error": str(exc).strip("'\"")})
        if path == "/3.0" or path.startswith("/3.0/"):
            return self._api(request, path)
        return _problem(404, "Resource Not Found", "The requested resource could not be found.")

    def _api(self, request: Request, path: str) -> Response:
        given = _basic_auth_key(request.headers)
        api_key = given if given in self._accounts else None
        with self._lock:
            self._requests_total += 1
            self.requests.append({
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "correlation_id": request.headers.get("X-Correlation-ID"),
                "api_key_ok": api_key is not None,
            })
        if api_key is None:
            return _problem(401, "API Key Invalid",
                            "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
        with self._lock:
            admitted = self._in_flight[api_key] < self.world.max_connections
            if admitted:
                self._in_flight[api_key] += 1
                self.max_in_flight[api_key] = max(self.max_in_flight[api_key], self._in_flight[api_key])
            else:
                self.rejected_over_limit[api_key] += 1
        if not admitted:
            return _problem(429, "Too Many Requests",
                            f"You have exceeded the limit of {self.world.max_connections} simultaneous connections.")
        try:
            return self._injected_fault() or self._route(request, path, api_key)
        except _ApiError as error:
            return error.response
        finally:
            with self._lock:
                self._in_flight[api_key] -= 1

    def _injected_fault(self) -> Response | None:
        with self._lock:
            faults = self.faults
            if faults.bodyless_403 > 0:
                faults.bodyless_403 -= 1
                status = 403
            elif faults.burst_429 > 0:
                faults.burst_429 -= 1
                status = 429
            elif faults.error_rate > 0 and self._rng.random() < faults.error_rate:
                status = self._rng.choice((500, 502, 503))
            else:
                return None
        if status == 403:
            return Response(403, b"", "text/html; charset=UTF-8")
        if status == 429:
            return _problem(429, "Too Many Requests",
                            "You have made too many requests recently. Please try again later.")
        title = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
        return _problem(status, title, "An unexpected internal error has occurred. Please try again.")

    def _route(self, request: Request, path: str, api_key: str) -> Response:
        for pattern, handler_name in _ROUTES:
            match = pattern.fullmatch(path)
            if match:
                if request.method != "GET":
                    return _problem(405, "Method Not Allowed", f"{request.method} is not supported on this resource.")
                handler: Callable[..., Response] = getattr(self, handler_name)
                return handler(request.query, api_key, *match.groups())
        raise _not_found()

    def _visible(self, list_id: str, api_key: str) -> _ListData:
        data = self._lists.get(list_id)
        if data is None or self._owner[list_id] != api_key or data.sim_list.archived:
            raise _not_found()
        return data

    def _get_ping(self, query: Mapping[str, str], api_key: str) -> Response:
        return _ok({"health_status": "Everything's Chimpy!"})

    def _get_lists(self, query: Mapping[str, str], api_key: str) -> Response:
        count = _int_param(query, "count", 10, MAX_COUNT)
        offset = _int_param(query, "offset", 0)
        time.sleep(self.faults.page_delay_s)
        with self._lock:
            visible = [d for d in self._lists.values()
                       if self._owner[d.list_id] == api_key and not d.sim_list.archived]
            lists = [self._list_object(d) for d in visible[offset:offset + count]]
        payload = {
            "lists": lists,
            "total_items": len(visible),
            "constraints": {
                "may_create": False, "max_instances": len(visible), "current_total_instances": len(visible),
            },
            "_links": [],
        }
        return _ok(_trim(payload, query))

    def _get_list(self, query: Mapping[str, str], api_key: str, list_id: str) -> Response:
        with self._lock:
            payload = self._list_object(self._visible(list_id, api_key))
        return _ok(_trim(payload, query))

    def _list_object(self, data: _ListData) -> dict[str, Any]:
        by_status = np.bincount(data.status, minlength=len(STATUSES)).tolist()
        created = _iso(np.array([self._anchor - 400 * 86400 - data.salt % (900 * 86400)]))[0]
        newest = _iso(data.keys[-1:] // data.mult)[0] if data.n else ""
        company = data.sim_list.name.split()[0] if data.sim_list.name.split() else ""
        return {
            "id": data.list_id,
            "web_id": 100_000 + data.salt % 900_000,
            "name": data.sim_list.name,
            "contact": {"company": company, "address1": "1 Example Street", "address2": "", "city": "Springfield",
                        "state": "", "zip": "00000", "country": "US", "phone": ""},
            "permission_reminder": "You are receiving this email because you opted in via our website.",
            "use_archive_bar": True,
            "campaign_defaults": {
                "from_name": company, "from_email": "news@example.com", "subject": "", "language": "en",
            },
            "notify_on_subscribe": "",
            "notify_on_unsubscribe": "",
            "date_created": created,
            "list_rating": 3,
            "email_type_option": False,
            "subscribe_url_short": "",
            "subscribe_url_long": "",
            "beamer_address": "",
            "visibility": "prv",
            "double_optin": False,
            "has_welcome": False,
            "marketing_permissions": False,
            "modules": [],
            "stats": {
                "member_count": data.n,
                "total_contacts": data.n,
                "unsubscribe_count": by_status[_STATUS_CODE["unsubscribed"]],
                "cleaned_count": by_status[_STATUS_CODE["cleaned"]],
                "member_count_since_send": 0,
                "unsubscribe_count_since_send": 0,
                "cleaned_count_since_send": 0,
                "campaign_count": 0,
                "campaign_last_sent": "",
                "merge_field_count": 5,
                "avg_sub_rate": 0,
                "avg_unsub_rate": 0,
                "target_sub_rate": 0,
                "open_rate": 0,
                "click_rate": 0,
                "last_sub_date": newest,
                "last_unsub_date": "",
            },
            "_links": [{"rel": "self", "href": f"/3.0/lists/{data.list_id}", "method": "GET",
                        "targetSchema": "/schema/3.0/Definitions/Lists/Response.json"}],
        }

    def _get_members(self, query: Mapping[str, str], api_key: str, list_id: str) -> Response:
        data = self._visible(list_id, api_key)
        count = _int_param(query, "count", 10, MAX_COUNT)
        offset = _int_param(query, "offset", 0)
        since = _time_param(query, "since_last_changed")
        before = _time_param(query, "before_last_changed")
        status = query.get("status") or None
        if status is not None and status not in _STATUS_CODE:
            raise _bad_request(f"The status parameter must be one of {', '.join(STATUSES)}.")
        sort_field = query.get("sort_field") or None
        if sort_field is not None and sort_field not in SORT_FIELDS:
            raise _bad_request(f"The sort_field parameter must be one of {', '.join(SORT_FIELDS)}.")
        sort_dir = (query.get("sort_dir") or "ASC").upper()
        if sort_dir not in ("ASC", "DESC"):
            raise _bad_request("The sort_dir parameter must be ASC or DESC.")
        with self._lock:
            delay = self.faults.page_delay_s
            if self.faults.slow_pages > 0:
                self.faults.slow_pages -= 1
                delay += self.faults.slow_page_s
            malformed = self.faults.malformed_json > 0
            if malformed:
                self.faults.malformed_json -= 1
        while self.faults.hold_pages:
            time.sleep(_HOLD_POLL_S)
        time.sleep(delay)
        with self._lock:
            selection = data.select(since, before, None if status is None else _STATUS_CODE[status], sort_field,
                                    sort_field is not None and sort_dir == "DESC", self.world.bounds)
            page_idx = selection[offset:offset + count]
            page = self._snapshot(data, page_idx)
            rate = self.faults.malformed_member_rate
        payload: dict[str, Any] = {"members": [], "list_id": data.list_id, "total_items": len(selection), "_links": []}
        if query.get("fields"):
            tree = _parse_paths(query["fields"])
            payload = _include({k: v for k, v in payload.items() if k != "members"}, tree)
            if "members" in tree:
                payload = {"members": page.build(tree["members"], rate), **payload}
        else:
            payload["members"] = page.build(None, rate)
        if query.get("exclude_fields"):
            payload = _exclude(payload, _parse_paths(query["exclude_fields"]))
        response = _ok(payload)
        with self._lock:
            touched = page_idx[: self.faults.touch_after_page]
            self._touch_locked(data, touched, self._now_epoch(), None, None, False)
        if malformed:
            response.body = response.body[: len(response.body) // 2]
        return response

    def _get_member(self, query: Mapping[str, str], api_key: str, list_id: str, subscriber_hash: str) -> Response:
        data = self._visible(list_id, api_key)
        subscriber = unquote(subscriber_hash)
        member_id = member_id_for(subscriber) if "@" in subscriber else subscriber.lower()
        with self._lock:
            try:
                index = data.index_of(member_id)
            except KeyError:
                raise _not_found() from None
            page = self._snapshot(data, np.array([index], dtype=np.int64))
            rate = self.faults.malformed_member_rate
        return _ok(_trim(page.build(None, rate)[0], query))

    def _admin(self, request: Request, path: str) -> Response:
        parts = path.split("/")[2:]
        if parts == ["faults"] and request.method == "GET":
            return Response.json(200, asdict(self.faults))
        if parts == ["faults"] and request.method == "POST":
            self._merge_faults(request.json())
            return Response.json(200, asdict(self.faults))
        if parts == ["faults", "reset"] and request.method == "POST":
            with self._lock:
                for name, value in asdict(MailchimpFaults()).items():
                    setattr(self.faults, name, value)
            return Response.json(200, asdict(self.faults))
        if len(parts) == 3 and parts[0] == "lists" and parts[2] == "touch" and request.method == "POST":
            body = request.json() or {}
            if not isinstance(body, dict) or not set(body) <= _TOUCH_ARGS:
                raise ValueError(f"touch takes a JSON object with keys among {sorted(_TOUCH_ARGS)}")
            if body.get("at") is not None:
                body["at"] = _instant(body["at"])
            return Response.json(200, {"touched": self.touch(parts[1], **body)})
        if len(parts) == 3 and parts[0] == "lists" and parts[2] == "truth" and request.method == "GET":
            truth = self.members_truth(parts[1])
            return Response.json(200, {"members": {m: at.isoformat() for m, at in truth.items()}})
        if parts == ["stats"] and request.method == "GET":
            with self._lock:
                return Response.json(200, {
                    "max_in_flight": {_mask(k): v for k, v in self.max_in_flight.items()},
                    "rejected_over_limit": {_mask(k): v for k, v in self.rejected_over_limit.items()},
                    "requests": self._requests_total,
                })
        return Response.json(404, {"error": f"no admin endpoint {request.method} {path}"})

    def _merge_faults(self, changes: Any) -> None:
        if not isinstance(changes, dict):
            raise ValueError("faults must be a JSON object")
        defaults = asdict(MailchimpFaults())
        for name, value in changes.items():
            if name not in defaults:
                raise ValueError(f"unknown fault {name!r}")
            kind = type(defaults[name])
            if kind is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"fault {name!r} must be a bool")
                continue
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not numeric or (kind is int and not isinstance(value, int)):
                raise ValueError(f"fault {name!r} must be a {kind.__name__}")
            if value < 0:
                raise ValueError(f"fault {name!r} must be >= 0")
        with self._lock:
            for name, value in changes.items():
                setattr(self.faults, name, type(defaults[name])(value))


def serve(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a Mailchimp Marketing API v3 simulator on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--world",
        choices=["demo", "fleet"],
        default="demo",
        help="demo: two accounts, three lists; fleet: --accounts × --lists-per-account lists (keys from fleet_key)",
    )
    parser.add_argument("--accounts", type=int, default=10, help="fleet world only")
    parser.add_argument("--lists-per-account", type=int, default=100, help="fleet world only")
    parser.add_argument("--page-delay-ms", type=float, default=0.0)
    parser.add_argument("--members", type=int, default=None, help="override every list's member count")
    parser.add_argument(
        "--history-ends",
        type=datetime.fromisoformat,
        default=None,
        help="ISO 8601 moment the 48 hours of changes end (default: now); the simulated clock starts there",
    )
    args = parser.parse_args(argv)
    now = args.history_ends
    world = fleet_world(args.accounts, args.lists_per_account, 2400, now) if args.world == "fleet" else demo_world(now)
    world.seed = args.seed
    if args.members is not None:
        for account in world.accounts:
            for lst in account.lists:
                lst.members = args.members
    simulator = MailchimpSimulator(world, MailchimpFaults(page_delay_s=args.page_delay_ms / 1000), port=args.port)
    with simulator:
        print(f"Mailchimp simulator on {simulator.base_url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
