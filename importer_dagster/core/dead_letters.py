"""Dead letters: contacts that could not be imported, with the reason, until someone replays them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from importer_dagster.core.state import dead_letters_table, insert_for


@dataclass(frozen=True)
class DeadLetter:
    member_id: str
    reason: str
    payload: str
    external_id: str | None = None


@dataclass(frozen=True)
class DeadLetterRow:
    id: int
    account: str
    list_key: str
    window: str
    stage: str
    member_id: str
    external_id: str | None
    reason: str
    payload: str
    run_id: str
    """The import run that first failed the contact; a replay never replaces it."""
    recorded_at: datetime
    resolved_run_id: str | None
    replay_run_id: str | None = None
    """The last replay that sent it again and failed again."""


class DeadLetters:
    """Contacts that could not be imported, with the reason, kept until someone replays them.

    One row per (list, window, stage, member): a record that fails again updates its row rather
    than piling up copies, and a record that later gets through is marked resolved, not deleted,
    so the history of what went wrong stays.
    """

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def _upsert(self, rows: list[dict[str, Any]], *, replay: bool) -> sa.Insert:
        statement = insert_for(self.engine)(dead_letters_table).values(rows)
        kept = ("external_id", "reason", "payload", "recorded_at", "replay_run_id" if replay else "run_id")
        return statement.on_conflict_do_update(
            index_elements=["list_key", "window", "stage", "member_id"],
            set_={**{name: statement.excluded[name] for name in kept}, "resolved_run_id": None},
        )

    def record(
        self,
        *,
        account: str,
        list_key: str,
        window: str,
        stage: str,
        run_id: str,
        letters: Sequence[DeadLetter],
        replay_run_id: str | None = None,
    ) -> None:
        """`run_id` is the import run the letters come from; a replay passes its own as `replay_run_id`."""
        if not letters:
            return
        now = datetime.now(timezone.utc)
        rows = [
            {**asdict(letter), "account": account, "list_key": list_key, "window": window, "stage": stage,
             "run_id": run_id, "recorded_at": now, "replay_run_id": replay_run_id}
            for letter in {letter.member_id: letter for letter in letters}.values()
        ]
        with self.engine.begin() as connection:
            for start in range(0, len(rows), 500):
                connection.execute(self._upsert(rows[start : start + 500], replay=replay_run_id is not None))

    def open_members(self, list_key: str) -> dict[str, str]:
        """member id → the earliest window in which it has an open letter: one query for a whole sweep."""
        table = dead_letters_table
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(table.c.member_id, sa.func.min(table.c.window))
                .where(table.c.list_key == list_key, table.c.resolved_run_id.is_(None))
                .group_by(table.c.member_id)
            )
            return dict(rows.all())

    def resolve(self, list_key: str, member_ids: Iterable[str], run_id: str, *, up_to_window: str) -> None:
        """The members got through in `up_to_window`: their open letters of that window and earlier
        are resolved by `run_id`. A later window's letter holds newer data and stays open."""
        ids = list(member_ids)
        if not ids:
            return
        table = dead_letters_table
        with self.engine.begin() as connection:
            for start in range(0, len(ids), 500):
                connection.execute(
                    table.update()
                    .where(
                        table.c.list_key == list_key,
                        table.c.window <= up_to_window,
                        table.c.member_id.in_(ids[start : start + 500]),
                        table.c.resolved_run_id.is_(None),
                    )
                    .values(resolved_run_id=run_id)
                )

    def rows(
        self,
        *,
        account: str | None = None,
        list_key: str | None = None,
        window: str | None = None,
        include_resolved: bool = False,
        limit: int | None = None,
    ) -> list[DeadLetterRow]:
        table = dead_letters_table
        query = sa.select(table).order_by(table.c.id)
        if account:
            query = query.where(table.c.account == account)
        if list_key:
            query = query.where(table.c.list_key == list_key)
        if window:
            query = query.where(table.c.window == window)
        if not include_resolved:
            query = query.where(table.c.resolved_run_id.is_(None))
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [DeadLetterRow(**row._mapping) for row in connection.execute(query)]
