"""The store: the one place that opens write transactions on the state file.

Each write method is one ``db.atomic()`` transaction, so a crash leaves either all of it or
none of it: a page's notifications together with its seen versions, a poll's end, or a
delivery attempt together with the notification's new status.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from sqlite_utils import Database

from state import apiinstances, inbound, outbox, watermarks
from state.checkpoint import Checkpointer
from state.db import open_db
from state.errors import StateError
from state.types import (
    ApiInstance,
    Attempt,
    AttemptResult,
    InboundRequest,
    InboundWrite,
    Notification,
    OutboxEntry,
    Pending,
    ResourceState,
    SeenVersion,
    StoredRequest,
)

__all__ = ["Store", "open_store", "default_state_path", "InboundResult", "InboundWrite"]


class _SomeKnown(Exception):
    """An inbound write met an event announced before: its transaction is done again with care."""


@dataclass(frozen=True, slots=True)
class InboundResult:
    """What :meth:`Store.record_inbound_many` committed for one request."""

    request_id: int
    outcome: str  # accepted | duplicate
    events: int  # new events announced
    notification_ids: tuple[str, ...]

_SCAN_FROM_IDS = 32  # fewer ids: their one lookup query costs less than a pass might fail to save


class Store:
    """An open state file, as its writer or as a reader. Close it (or use ``with``)."""

    def __init__(self, path: Path, db: Database, *, writer: bool) -> None:
        self.path = path
        self.db = db
        self.writer = writer
        self._closed = False
        self._seen_more_than: dict[str, int] = {}  # resource key -> a number its seen rows exceed
        # failed writes by kind ("cannot record a page"), until a write of that kind commits: what
        # health reports. A full disk still lets BEGIN and ROLLBACK through, and even small writes
        # that reuse WAL space, while the pages of a poll fail.
        self._write_failures: dict[str, str] = {}
        # ...of them, those that failed on a lock another connection held: any commit, or a write
        # transaction that starts, proves it gone (a short lock failed a backoff write, which only
        # a later failure writes again, and /healthz stayed 503 until the watchdog killed us)
        self._busy_kinds: set[str] = set()
        # quiet polls (see finish_quiet_poll) not written yet: key -> (latest poll ms, how many)
        self.defer_quiet_polls = False
        self._quiet: dict[str, tuple[int, int]] = {}
        self._identity = _file_identity(path)  # to tell, later, the file deleted or replaced under us

    @property
    def immutable(self) -> bool:
        """True when the file was read as it is on disk, its folder being read-only: what a writer
        has not checkpointed from its WAL yet is not seen."""
        return bool(getattr(self.db, "immutable", False))

    def __repr__(self) -> str:
        return f"<Store {str(self.path)!r} {'writer' if self.writer else 'reader'}{' closed' if self._closed else ''}>"

    def take_over_checkpoints(self) -> Checkpointer:
        """Stop the writer's automatic WAL checkpoints; the caller runs the returned
        :class:`~state.checkpoint.Checkpointer` off its own thread instead (and closes it before
        the store)."""
        if not self.writer:
            raise StateError(f"{self.path}: checkpoints: the store is open read-only")
        with self._errors("cannot configure checkpoints"):
            self.db.execute("PRAGMA wal_autocheckpoint = 0")
        return Checkpointer(self.path)

    def close(self) -> None:
        """Close the connection and, for the writer, release the lock (writing the quiet polls
        not written yet, if it can)."""
        if not self._closed:
            if self._quiet:
                try:
                    self.flush_quiet_polls()
                except StateError:
                    pass  # (their times and counts only: see finish_quiet_poll)
            self._closed = True
            self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # reads

    def resource_state(self, key: str) -> ResourceState:
        with self._errors(f"cannot read the state of {key}"):
            return self._with_quiet(watermarks.get_resource(self.db, key))

    def poll_state(self, key: str) -> tuple[ResourceState, int | None]:
        """What a poll reads first, in one query: the resource's state and its highest
        notification sequence number (new ones must go after it)."""
        with self._errors(f"cannot read the state of {key}"):
            state, max_seq = watermarks.poll_state(self.db, key)
            return self._with_quiet(state), max_seq

    def resource_states(self) -> list[ResourceState]:
        with self._errors("cannot read resource states"):
            return [self._with_quiet(state) for state in watermarks.list_resources(self.db)]

    def _with_quiet(self, state: ResourceState) -> ResourceState:
        """``state`` with the quiet polls this store has not written yet (the latest polls of that
        resource: a poll written at once takes them along, see _take_quiet)."""
        quiet = self._quiet.get(state.key) if self._quiet else None
        if quiet is None or state.last_poll_ms is None:  # (no row, or a row retention has just deleted)
            return state
        last, count = quiet
        return replace(state, last_poll_ms=last, last_success_ms=last, polls=state.polls + count)

    @contextmanager
    def _take_quiet(self, key: str) -> Iterator[tuple[int | None, int]]:
        """(time of the latest, how many) quiet polls of ``key`` not written yet, for a write of a
        later poll to take along: kept if that write fails. Taken, not left for the flush, so that
        the flush never writes a time older than what a later poll wrote (the clock may go back)."""
        quiet = self._quiet.pop(key, None)
        try:
            yield quiet if quiet is not None else (None, 0)
        except BaseException:
            if quiet is not None:
                self._quiet[key] = quiet  # (the write is synchronous: no quiet poll of key came meanwhile)
            raise

    def set_busy_timeout(self, ms: int) -> None:
        """How long a statement waits for a lock another connection holds (state.db.BUSY_TIMEOUT_MS)."""
        with self._errors("cannot set the busy timeout"):
            self.db.execute(f"PRAGMA busy_timeout = {int(ms)}")

    def seen_versions(self, key: str, object_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """``{object id: {version: stamp ms}}``; ids never seen are absent.

        Read in one pass over the resource's rows when it holds at most twice as many as the ids
        asked for (a page meeting the versions of its own lookback window), else id by id (always
        for fewer than ``_SCAN_FROM_IDS`` ids: one query, where a pass could gain nothing). A
        resource found larger is not scanned again for fewer ids until rows are removed: only
        pruning and forgetting shrink it, so the bound stays true meanwhile."""
        ids = dict.fromkeys(object_ids)
        if not ids:
            return {}
        limit = 2 * len(ids)
        with self._errors(f"cannot read seen versions of {key}"):
            if len(ids) >= _SCAN_FROM_IDS and limit > self._seen_more_than.get(key, -1):
                found = watermarks.scan_seen(self.db, key, ids, limit)
                if found is not None:
                    return found
                self._seen_more_than[key] = limit
            return watermarks.seen_versions(self.db, key, ids)

    def seen_count(self, key: str) -> int:
        with self._errors(f"cannot count seen versions of {key}"):
            return watermarks.seen_count(self.db, key)

    def notifications(self, status: str | None = None, limit: int | None = None, *,
                      newest_first: bool = False, instance_id: str | None = None,
                      after: tuple[int, int, str] | None = None) -> list[OutboxEntry]:
        """Notifications oldest first (``created_ms``, ``seq``, ``id``), or newest first; of one
        instance, and past ``after`` (a page's last (created_ms, seq, id)), when given."""
        with self._errors("cannot read the outbox"):
            return outbox.list_notifications(self.db, status, limit, newest_first=newest_first,
                                             instance_id=instance_id, after=after)

    def notification(self, id: str) -> OutboxEntry | None:  # noqa: A002 (the interface's name)
        """The notification with this id, or ``None``."""
        with self._errors(f"cannot read notification {id}"):
            return outbox.get_notification(self.db, id)

    def due_notifications(self, now_ms: int, *, everything: bool = False) -> list[OutboxEntry]:
        """The heads of the per-resource queues that may be sent now; see
        :func:`state.outbox.due_notifications`. ``everything``: every head, due or not."""
        with self._errors("cannot read the due notifications"):
            return outbox.due_notifications(self.db, now_ms, everything=everything)

    def pending(self, *, after_rowid: int = 0, limit: int = 100_000) -> list[Pending]:
        """Pending notifications without bodies, in write order, past ``after_rowid``."""
        with self._errors("cannot read the outbox"):
            return outbox.pending(self.db, after_rowid=after_rowid, limit=limit)

    def body(self, id: str) -> bytes | None:  # noqa: A002
        """The body of a pending notification, or None when it is not pending any more."""
        with self._errors(f"cannot read notification {id}"):
            return outbox.body(self.db, id)

    def record_attempts(self, results: Sequence[AttemptResult]) -> None:
        """Several delivery attempts in one transaction (see mark_delivered and mark_failed)."""
        if results:
            with self._transaction("cannot record delivery attempts"):
                outbox.record_results(self.db, results)

    def attempts(self, id: str) -> list[Attempt]:  # noqa: A002
        """The notification's delivery attempts, oldest first ([] for an unknown id)."""
        with self._errors(f"cannot read the attempts of {id}"):
            return outbox.list_attempts(self.db, id)

    def outbox_counts(self) -> dict[str, int]:
        """``{"pending": n, "delivered": n, "dead": n}``."""
        with self._errors("cannot count the outbox"):
            return outbox.count_by_status(self.db)

    def open_counts_by_resource(self) -> dict[str, dict[str, int]]:
        """Pending and dead notifications per resource key."""
        with self._errors("cannot count the outbox"):
            return outbox.open_counts_by_resource(self.db)

    def integrity_check(self) -> str:
        """``"ok"``, or SQLite's list of problems, one per line."""
        with self._errors("cannot check integrity"):
            return "\n".join(str(row[0]) for row in self.db.execute("PRAGMA integrity_check"))

    # writes: one transaction each

    def record_page(self, key: str, instance_id: str, resource: str,
                    notifications: Sequence[Notification],
                    seen: Sequence[SeenVersion | tuple[str, str, int]], *,
                    first_cursor_ms: int | None = None) -> None:
        """Store one page's notifications and seen versions together. Safe to re-run.

        A seen version may be a :class:`SeenVersion` or the tuple ``(object_id, version, stamp_ms)``.
        ``first_cursor_ms``: the cursor of a resource that has none yet (a baseline's first page:
        see :func:`state.watermarks.fail_poll`)."""
        with self._transaction(f"cannot record a page of {key}"):
            watermarks.ensure_resource(self.db, key, instance_id, resource)
            outbox.insert_notifications(self.db, notifications)
            watermarks.add_seen(self.db, key, seen)
            if first_cursor_ms is not None:
                watermarks.set_first_cursor(self.db, key, first_cursor_ms)

    def finish_poll(self, key: str, instance_id: str, resource: str, *, cursor_ms: int | None, now_ms: int,
                    prune_before_ms: int | None, prune_hash_before_ms: int | None, events: int,
                    seen_from_ms: int | None = None) -> None:
        """End a successful poll: move the cursor (never back), reset failures, prune seen versions;
        ``seen_from_ms``: the remembered date versions now begin there, or later (never earlier)."""
        with self._take_quiet(key) as (_, earlier), self._transaction(f"cannot finish the poll of {key}"):
            # (one statement when the row is there, as it is after the first poll)
            if not watermarks.finish_poll(self.db, key, cursor_ms=cursor_ms, now_ms=now_ms, events=events,
                                          earlier_polls=earlier, seen_from_ms=seen_from_ms):
                watermarks.ensure_resource(self.db, key, instance_id, resource)
                watermarks.finish_poll(self.db, key, cursor_ms=cursor_ms, now_ms=now_ms, events=events,
                                       earlier_polls=earlier, seen_from_ms=seen_from_ms)
            watermarks.prune_seen(self.db, key, before_ms=prune_before_ms, hash_before_ms=prune_hash_before_ms)
        self._seen_more_than.pop(key, None)

    def finish_quiet_poll(self, key: str, *, now_ms: int) -> None:
        """End a successful poll that changed nothing: same cursor, no event, no version written,
        the resource already without failure, backoff or removal mark. All it leaves is its time
        and one more poll, and those wait in memory for :meth:`flush_quiet_polls` (the daemon
        calls it every second), one transaction for all of them instead of one per poll. A crash
        forgets at most that second's times and counts: the resource is polled again a little
        early after the restart; no cursor, version or notification is involved."""
        self._quiet[key] = (now_ms, self._quiet.get(key, (0, 0))[1] + 1)

    def flush_quiet_polls(self) -> int:
        """Write the quiet polls kept in memory, in one transaction; how many resources. On a
        failure they are kept for the next flush."""
        if not self._quiet:
            return 0
        rows, self._quiet = self._quiet, {}
        try:
            with self._transaction("cannot record quiet polls"):
                watermarks.record_quiet_polls(self.db, [(key, last, count) for key, (last, count) in rows.items()])
        except StateError:
            self._quiet = rows  # (none came meanwhile: one thread)
            raise
        return len(rows)

    def prune_seen_part(self, key: str, *, before_ms: int | None, hash_before_ms: int | None,
                        after: tuple[str, str] | None, rows: int) -> tuple[int, tuple[str, str] | None]:
        """finish_poll's pruning over ``rows`` seen rows, one transaction: for a resource with
        so many that pruning them at once would hold the event loop (see
        :func:`state.watermarks.prune_seen_part`; ``after`` is where the last part ended)."""
        with self._transaction(f"cannot prune the seen versions of {key}"):
            done = watermarks.prune_seen_part(self.db, key, before_ms=before_ms, hash_before_ms=hash_before_ms,
                                              after=after, rows=rows)
        self._seen_more_than.pop(key, None)
        return done

    def fail_poll(self, key: str, instance_id: str, resource: str, *, now_ms: int, error: str,
                  next_due_ms: int | None, first_cursor_ms: int | None = None) -> None:
        """End a failed poll; the cursor stays where it was (a resource without one gets
        ``first_cursor_ms`` when given: see :func:`state.watermarks.fail_poll`)."""
        with self._take_quiet(key) as (earlier_ms, earlier), \
                self._transaction(f"cannot record the failed poll of {key}"):
            watermarks.ensure_resource(self.db, key, instance_id, resource)
            watermarks.fail_poll(self.db, key, now_ms=now_ms, error=error, next_due_ms=next_due_ms,
                                 first_cursor_ms=first_cursor_ms, earlier_success_ms=earlier_ms,
                                 earlier_polls=earlier)

    def set_cursor(self, key: str, cursor_ms: int | None) -> None:
        """Set the cursor, back included: for a cursor found beyond any believable clock."""
        with self._transaction(f"cannot set the cursor of {key}"):
            watermarks.set_cursor(self.db, key, cursor_ms)
        self._seen_more_than.pop(key, None)

    def set_next_due(self, key: str, next_due_ms: int | None) -> None:
        """When the resource may be polled again (a backoff that must survive a restart)."""
        with self._transaction(f"cannot record the next poll of {key}"):
            watermarks.set_next_due(self.db, key, next_due_ms)

    def forget_resource(self, key: str) -> None:
        """Forget where a resource stood: if it comes back, it starts with a baseline."""
        with self._transaction(f"cannot forget {key}"):
            watermarks.forget(self.db, key)
        self._seen_more_than.pop(key, None)

    def mark_removed(self, keys: Iterable[str], *, now_ms: int) -> int:
        """Resources no longer polled (removed from the configuration, or disabled): they keep their
        cursor and seen versions, and resume if they come back before retention forgets them."""
        keys = list(keys)
        if not keys:
            return 0
        with self._transaction("cannot mark removed resources"):
            return watermarks.mark_removed(self.db, keys, now_ms)

    def resume(self, keys: Iterable[str]) -> int:
        """Resources configured again: no longer marked removed (a poll also clears the mark)."""
        keys = list(keys)
        if not keys:
            return 0
        with self._transaction("cannot resume resources"):
            return watermarks.resume(self.db, keys)

    def prune(self, *, now_ms: int, delivered_before_ms: int, dead_before_ms: int, removed_before_ms: int,
              limit: int = 500) -> tuple[int, int]:
        """One small batch of retention (engine.retention): up to ``limit`` finished notifications
        and ``limit`` long-removed resources go, in one short transaction. Returns (notifications,
        resources) deleted; call again while either is ``limit``."""
        with self._transaction("cannot prune the state file"):
            notes = outbox.prune_finished(self.db, delivered_before_ms=delivered_before_ms,
                                          dead_before_ms=dead_before_ms, limit=limit)
            gone = watermarks.prune_removed(self.db, removed_before_ms, limit)
        for key in gone:
            self._seen_more_than.pop(key, None)
        return notes, len(gone)

    def shift_due_times(self, delta_ms: int, *, after_ms: int) -> int:
        """Move every due time planned after ``after_ms`` (pending notifications' next attempts,
        resources' backoffs) by ``delta_ms``: the wall clock jumped by that much, and what was
        due in an hour is still due in an hour. Returns the rows moved."""
        with self._transaction("cannot move due times"):
            return (outbox.shift_next_attempts(self.db, delta_ms, after_ms)
                    + watermarks.shift_next_due(self.db, delta_ms, after_ms))

    def give_space_back(self, pages: int = 2000) -> int:
        """Return up to ``pages`` free pages to the file system (SQLite's incremental vacuum), so
        that the file shrinks after retention. Returns the pages still free."""
        with self._errors("cannot vacuum the state file"):
            self.db.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()
            return int(self.db.execute("PRAGMA freelist_count").fetchone()[0])

    def max_seq(self, key: str) -> int | None:
        """The highest notification sequence number of a resource (new ones must go after it)."""
        with self._errors("cannot read the outbox"):
            return outbox.max_seq(self.db, key)

    def retarget_callbacks(self, urls: dict[str, str]) -> int:
        """Pending notifications follow their instance's callback URL (instance id -> URL) as it is
        configured now; returns how many changed."""
        if not urls:
            return 0
        with self._transaction("cannot update callback URLs"):
            return outbox.retarget(self.db, urls)

    def mark_delivered(self, id: str, *, now_ms: int, status_code: int,  # noqa: A002
                       duration_ms: int) -> None:
        """Record a 2xx: the notification is delivered (if it was still pending) and the attempt
        is recorded (in any case). An unknown id raises StateError."""
        with self._transaction(f"cannot record the delivery of {id}"):
            outbox.mark_delivered(self.db, id, now_ms=now_ms, status_code=status_code, duration_ms=duration_ms)

    def mark_failed(self, id: str, *, now_ms: int, status_code: int | None, error: str,  # noqa: A002
                    duration_ms: int, next_attempt_ms: int | None) -> None:
        """Record a failed attempt: retry at ``next_attempt_ms``, or ``None`` for a dead letter.
        A notification no longer pending keeps its status; the attempt is recorded in any case."""
        with self._transaction(f"cannot record the failed delivery of {id}"):
            outbox.mark_failed(self.db, id, now_ms=now_ms, status_code=status_code, error=error,
                               duration_ms=duration_ms, next_attempt_ms=next_attempt_ms)

    def replay(self, ids: Sequence[str] = (), *, dead: bool = False, now_ms: int,
               instance_id: str | None = None) -> list[str]:
        """Put ``ids`` (any status) and, with ``dead``, every dead letter (of ``instance_id``, when
        given) back to pending with attempts reset, due at ``now_ms``. Returns the ids replayed.
        Unknown ids raise StateError naming them, and nothing changes."""
        with self._transaction("cannot replay notifications"):
            return outbox.replay(self.db, ids, dead=dead, now_ms=now_ms, instance_id=instance_id)

    # instances created through the management API (DESIGN §11)

    def api_instances(self, *, deleted: bool = True) -> list[ApiInstance]:
        """Every API instance by number (``deleted``: those stopped by DELETE too)."""
        with self._errors("cannot read API instances"):
            return apiinstances.list_instances(self.db, deleted=deleted)

    def api_instance(self, number: int) -> ApiInstance | None:
        with self._errors(f"cannot read API instance {number}"):
            return apiinstances.get_instance(self.db, number)

    def create_api_instance(self, make: Callable[[int], tuple[dict, str]], *, file_ids: Iterable[str],
                            now_ms: int) -> ApiInstance:
        """A new API instance: its number is drawn (never one given before, nor the text of a file
        instance's id), then ``make(number)`` gives its (body, token); stored in one transaction."""
        with self._transaction("cannot store a new API instance"):
            number = apiinstances.next_number(self.db, file_ids)
            body, token = make(number)
            apiinstances.insert(self.db, number, body, token, now_ms)
            found = apiinstances.get_instance(self.db, number)
        assert found is not None
        return found

    def update_api_instance(self, number: int, *, now_ms: int, body: dict | None = None,
                            enabled: bool | None = None, deleted: bool = False) -> ApiInstance:
        with self._transaction(f"cannot update API instance {number}"):
            apiinstances.update(self.db, number, now_ms=now_ms, body=body, enabled=enabled, deleted=deleted)
            found = apiinstances.get_instance(self.db, number)
        if found is None:
            raise StateError(f"{self.path}: API instance {number} does not exist")
        return found

    def instance_numbers(self, file_ids: Sequence[str]) -> dict[str, int]:
        """The integer id of every instance: the file's (given one now where missing) and the API's.
        (A file instance whose id is an API instance's number text keeps its own number: that API
        instance is not loaded, see poller.config.apibody.merge.)"""
        with self._errors("cannot read instance numbers"):
            known = apiinstances.file_numbers(self.db)
            api = {a.instance_id: a.number for a in apiinstances.list_instances(self.db)}
        if any(i not in known for i in file_ids) and self.writer:
            with self._transaction("cannot number the instances"):
                apiinstances.number_files(self.db, file_ids, api)
                known = apiinstances.file_numbers(self.db)
        return {**api, **known}

    # inbound webhooks (DESIGN §10)

    def webhook_tokens(self) -> dict[str, str]:
        """The generated URL tokens, by instance id."""
        with self._errors("cannot read webhook tokens"):
            return inbound.tokens(self.db)

    def ensure_webhook_tokens(self, instance_ids: Iterable[str], make: Callable[[], str], *,
                              now_ms: int) -> dict[str, str]:
        """Every token, with one made (``make()``) and kept for each of ``instance_ids`` that had
        none: an instance's URL never changes once it is printed."""
        found = self.webhook_tokens()
        missing = {i: make() for i in dict.fromkeys(instance_ids) if i not in found}
        if missing:
            with self._transaction("cannot store webhook tokens"):
                inbound.add_tokens(self.db, missing, now_ms)
            found = self.webhook_tokens()
        return found

    def record_inbound_many(self, writes: Sequence[InboundWrite]) -> list[InboundResult]:
        """Keep accepted requests with their new events' notifications, in one transaction (a
        group commit: the requests that arrived together cost one commit), in order, so a later
        one sees the events and notifications of those before it. All of them commit, or none.

        Of each write's ``event_ids``, those its instance announced already are left out, and
        ``build(new ids in order, first seq)`` makes the notifications of the rest; ``replay_of``:
        the stored request normalised again (its row is updated)."""
        if not writes:
            return []
        what = f"cannot record an inbound request of {writes[0].request.instance_id}"
        claims = [(w.request.instance_id, w.event_dates or [0] * len(w.event_ids), w.event_ids, w.request.received_ms)
                  for w in writes]
        try:
            with self._transaction(what):
                # first as if every event were new, all of the group's at once (the usual case)
                if not inbound.claim_new_events(self.db, claims):
                    raise _SomeKnown()
                return [self._record_inbound(w, list(w.event_ids)) for w in writes]
        except _SomeKnown:  # (rolled back: done again, request by request, finding out which are new)
            with self._transaction(what):
                results = []
                for write, (instance_id, dates, event_ids, now_ms) in zip(writes, claims):
                    new_set = inbound.claim_events(self.db, instance_id, list(zip(dates, event_ids)), now_ms)
                    results.append(self._record_inbound(write, [e for e in dict.fromkeys(write.event_ids)
                                                                if e in new_set]))
                return results

    def _record_inbound(self, write: InboundWrite, new: list[str]) -> InboundResult:
        request, event_ids = write.request, write.event_ids
        notes = list(write.build(new, (outbox.max_seq(self.db, write.resource_key) or 0) + 1)) if new else []
        outbox.insert_notifications(self.db, notes)
        outcome = "duplicate" if event_ids and not new else "accepted"
        ids = tuple(n.id for n in notes)
        fields = {"outcome": outcome, "status": 200, "reason": write.reason, "events": len(new), "notification_ids": ids}
        if write.replay_of is None:
            request_id = inbound.insert_request(self.db, request, **fields)  # type: ignore[arg-type]
        else:
            inbound.update_request(self.db, write.replay_of, **fields)  # type: ignore[arg-type]
            request_id = write.replay_of
        return InboundResult(request_id, outcome, len(new), ids)

    def record_rejected(self, request: InboundRequest, *, status: int, reason: str,
                        replay_of: int | None = None) -> int:
        """Keep a request that was refused (unreadable, unknown list, bad signature) with its reason."""
        with self._transaction(f"cannot record an inbound request of {request.instance_id}"):
            if replay_of is None:
                return inbound.insert_request(self.db, request, outcome="rejected", status=status, reason=reason,
                                              events=0, notification_ids=())
            inbound.update_request(self.db, replay_of, outcome="rejected", status=status, reason=reason, events=0,
                                   notification_ids=())
            return replay_of

    def inbound_requests(self, *, ids: Sequence[int] = (), rejected: bool = False, instance_id: str | None = None,
                         limit: int | None = None) -> list[StoredRequest]:
        """Stored inbound requests, newest first (``ids``: those, in that order)."""
        with self._errors("cannot read inbound requests"):
            return inbound.list_requests(self.db, ids=ids, rejected=rejected, instance_id=instance_id, limit=limit)

    def prune_inbound(self, *, requests_before_ms: int, events_before_ms: int, limit: int = 500) -> int:
        """One small batch of inbound retention: old requests, and event ids past the dedupe window."""
        with self._transaction("cannot prune inbound requests"):
            return inbound.prune(self.db, requests_before_ms=requests_before_ms, events_before_ms=events_before_ms,
                                 limit=limit)

    def data_version(self) -> int:
        """A number that changes when another connection (``poller replay``, ``poller webhooks
        replay`` beside the daemon) commits to the file; this connection's own commits leave it."""
        with self._errors("cannot read the data version"):
            return int(self.db.conn.execute("PRAGMA data_version").fetchone()[0])

    def check_writable(self) -> None:
        """Raise StateError unless the last write committed and a write transaction can start now
        (for health checks). Starting one is not enough on its own: a full disk lets it start."""
        if not self.writer:
            raise StateError(f"{self.path}: health check: the store is open read-only")
        if self._write_failures and set(self._write_failures) <= self._busy_kinds and not self.db.conn.in_transaction:
            try:  # only locks failed writes: is the lock gone now?
                self.db.conn.execute("BEGIN IMMEDIATE")
                self.db.conn.execute("ROLLBACK")
                self._lock_gone()
            except sqlite3.Error:
                pass
        if self.write_failure is not None:
            raise StateError(f"{self.path}: the last write failed: {self.write_failure}")
        now = _file_identity(self.path)
        if now != self._identity:
            # the writes still succeed, into a file nobody will open again: everything since is lost
            # at the next start (cursors, seen versions, the outbox), so the daemon must say so
            happened = "deleted" if now is None else "replaced by another file"
            raise StateError(f"{self.path}: the state file was {happened} while in use: what is written now "
                             "is lost when this process stops; restore it, or restart to begin a new one")
        with self._errors("health check"):
            if not self.db.conn.in_transaction:
                self.db.conn.execute("BEGIN IMMEDIATE")
                self.db.conn.execute("ROLLBACK")

    @contextmanager
    def _transaction(self, what: str) -> Iterator[None]:
        if not self.writer:
            raise StateError(f"{self.path}: {what}: the store is open read-only")
        kind = what.split(" of ", 1)[0]
        try:
            with self._errors(what), self.db.atomic():
                yield
        except StateError as exc:
            self._write_failures[kind] = str(exc.__cause__ or exc)
            if _busy(exc.__cause__):
                self._busy_kinds.add(kind)
            else:
                self._busy_kinds.discard(kind)
            raise
        self._write_failures.pop(kind, None)
        self._lock_gone()

    def _lock_gone(self) -> None:
        for kind in self._busy_kinds:
            self._write_failures.pop(kind, None)
        self._busy_kinds.clear()

    @property
    def write_failure(self) -> str | None:
        """Why writes fail, while a kind of write that failed has not committed since; else None."""
        return next(iter(self._write_failures.values()), None)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        if self._closed:
            raise StateError(f"{self.path}: {what}: the store is closed")
        try:
            yield
        except (sqlite3.Error, outbox.UnknownNotifications) as exc:
            raise StateError(f"{self.path}: {what}: {exc}") from exc


def open_store(path: str | os.PathLike[str], *, writer: bool = True, exclusive: bool = True) -> Store:
    """Open the state file at ``path``; see :func:`state.db.open_db` for what each mode does."""
    path = Path(path)
    return Store(path, open_db(path, writer=writer, exclusive=exclusive), writer=writer)


def _busy(exc: BaseException | None) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection held a lock (not a full or broken disk)."""
    return isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (5, 6)


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def default_state_path(environ: Mapping[str, str], config_state_path: str | None) -> Path:
    """The configured ``statePath``, else ``$STATE_DIRECTORY/poller.db``, else ``./poller.db``.

    systemd sets STATE_DIRECTORY to a colon-separated list when a unit names several state
    directories; the first is ours. (``--state`` overrides all of this; that is the CLI's job.)
    """
    if config_state_path:
        return Path(config_state_path)
    first = next((d for d in environ.get("STATE_DIRECTORY", "").split(":") if d), None)
    return Path(first) / "poller.db" if first else Path("poller.db")
