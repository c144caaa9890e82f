"""Instances created through the management API (DESIGN §11), and the integer ids of every
instance: one space of numbers for the configuration file's instances and the API's, so an id
is never shown twice and never given again.

Writers never commit: they run inside the store's transaction and refuse otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlite_utils import Database

from state.db import require_transaction
from state.types import ApiInstance

__all__ = ["list_instances", "get_instance", "next_number", "insert", "update", "file_numbers", "number_files"]

_COLUMNS = "number, body, token, enabled, created_ms, updated_ms, deleted_ms"


def _row(row: tuple) -> ApiInstance:
    number, body, token, enabled, created_ms, updated_ms, deleted_ms = row
    return ApiInstance(number, json.loads(body), token, bool(enabled), created_ms, updated_ms, deleted_ms)


def list_instances(db: Database, *, deleted: bool = True) -> list[ApiInstance]:
    where = "" if deleted else " WHERE deleted_ms IS NULL"
    return [_row(r) for r in db.execute(f"SELECT {_COLUMNS} FROM api_instances{where} ORDER BY number")]


def get_instance(db: Database, number: int) -> ApiInstance | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM api_instances WHERE number = ?", [number]).fetchone()
    return _row(row) if row else None


def next_number(db: Database, taken: Iterable[str]) -> int:
    """The lowest number above every one given so far whose text is no instance id the state
    file knows: not a file instance's (``taken``, and every one ever numbered), and not one whose
    resources or notifications are kept (an instance removed from the file: a new instance with
    its id would take over its cursors, its pending notifications and their bodies)."""
    used = db.execute("SELECT max(n) FROM (SELECT max(number) AS n FROM api_instances "
                      "UNION ALL SELECT max(number) FROM instance_numbers)").fetchone()[0] or 0
    taken = set(taken) | set(file_numbers(db))
    number = used + 1
    while str(number) in taken or _kept(db, str(number)):
        number += 1
    return number


def _kept(db: Database, instance_id: str) -> bool:
    """Whether the state file holds resources or notifications of ``instance_id`` (index lookups)."""
    return db.execute("SELECT EXISTS (SELECT 1 FROM resources WHERE key >= ? AND key < ?) "
                      "OR EXISTS (SELECT 1 FROM outbox WHERE instance_id = ?)",
                      [instance_id + "/", instance_id + "0", instance_id]).fetchone()[0] == 1


def insert(db: Database, number: int, body: dict, token: str, now_ms: int) -> None:
    require_transaction(db)
    db.conn.execute("INSERT INTO api_instances (number, body, token, enabled, created_ms, updated_ms) "
                    "VALUES (?, ?, ?, 1, ?, ?)", (number, json.dumps(body), token, now_ms, now_ms))


def update(db: Database, number: int, *, now_ms: int, body: dict | None = None, enabled: bool | None = None,
           deleted: bool = False) -> None:
    require_transaction(db)
    sets, values = ["updated_ms = ?"], [now_ms]
    if body is not None:
        sets.append("body = ?")
        values.append(json.dumps(body))
    if enabled is not None:
        sets.append("enabled = ?")
        values.append(int(enabled))
    if deleted:
        sets.append("deleted_ms = ?")
        values.append(now_ms)
    db.conn.execute(f"UPDATE api_instances SET {', '.join(sets)} WHERE number = ?", (*values, number))


def file_numbers(db: Database) -> dict[str, int]:
    """The numbers given to the configuration file's instances, by instance id."""
    return {row[0]: row[1] for row in db.execute("SELECT instance_id, number FROM instance_numbers")}


def number_files(db: Database, instance_ids: Iterable[str], api_ids: Iterable[str]) -> None:
    """Give a number to each file instance that has none (numbers never change once given)."""
    require_transaction(db)
    known = file_numbers(db)
    taken = set(instance_ids) | set(api_ids)
    for instance_id in instance_ids:
        if instance_id not in known:
            number = next_number(db, taken)
            db.conn.execute("INSERT INTO instance_numbers (instance_id, number) VALUES (?, ?)", (instance_id, number))
            known[instance_id] = number
