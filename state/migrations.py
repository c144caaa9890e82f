"""Schema steps, applied in order by sqlite-utils' ``Migrations`` (one transaction per step).

Never edit a step once released: add a new one. The schema version of a file is the number
of steps applied to it; ``STEPS`` lists the steps this code knows.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["migrations", "STEPS", "applied_steps", "apply"]

migrations = Migrations("poller")
STEPS: list[str] = []


def _step(name: str) -> Callable[[Callable[[Database], None]], Callable[[Database], None]]:
    def register(fn: Callable[[Database], None]) -> Callable[[Database], None]:
        STEPS.append(name)
        return migrations(name=name)(fn)

    return register


@_step("0001_create_tables")
def _create_tables(db: Database) -> None:
    # inside the step's transaction, sqlite-utils runs a script statement by statement
    # (sqlite3's own executescript() would commit first)
    db.executescript("""
        CREATE TABLE resources (
            key TEXT PRIMARY KEY,
            instance_id TEXT,
            resource TEXT,
            cursor_ms INTEGER,
            last_poll_ms INTEGER,
            last_success_ms INTEGER,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            next_due_ms INTEGER,
            last_error TEXT,
            polls INTEGER NOT NULL DEFAULT 0,
            events INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE seen (
            resource_key TEXT,
            object_id TEXT,
            version TEXT,
            stamp_ms INTEGER NOT NULL,
            PRIMARY KEY (resource_key, object_id, version)
        ) WITHOUT ROWID;
        CREATE INDEX seen_resource_stamp ON seen (resource_key, stamp_ms);
        CREATE TABLE outbox (
            id TEXT PRIMARY KEY,
            resource_key TEXT NOT NULL,
            instance_id TEXT NOT NULL,
            resource TEXT NOT NULL,
            callback_url TEXT NOT NULL,
            seq INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            body BLOB NOT NULL,
            event_ids TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms INTEGER,
            last_error TEXT,
            delivered_ms INTEGER
        );
        CREATE INDEX outbox_status_next ON outbox (status, next_attempt_ms);
        CREATE INDEX outbox_resource_seq ON outbox (resource_key, seq);
        CREATE TABLE attempts (
            id INTEGER PRIMARY KEY,
            notification_id TEXT NOT NULL REFERENCES outbox(id),
            at_ms INTEGER NOT NULL,
            status_code INTEGER,
            error TEXT,
            duration_ms INTEGER
        );
        CREATE INDEX attempts_notification ON attempts (notification_id)
    """)


@_step("0002_outbox_pending_heads")
def _outbox_pending_heads(db: Database) -> None:
    # the due query walks the pending rows of each resource in seq order; without this index it
    # would also step over every delivered and dead row of the resource (they are never pruned)
    db.execute("CREATE INDEX outbox_pending_heads ON outbox (resource_key, seq) WHERE status = 'pending'")


@_step("0003_drop_seen_stamp_index")
def _drop_seen_stamp_index(db: Database) -> None:
    # Every page upserts its seen versions; keeping this index up to date cost about 40 % of that
    # write. It only served pruning, once per poll, which the primary key's resource prefix bounds.
    db.execute("DROP INDEX IF EXISTS seen_resource_stamp")


@_step("0004_paused_resources_and_retention")
def _paused_resources_and_retention(db: Database) -> None:
    # removed_ms: when a resource left the configuration (or its instance was disabled); its cursor
    # and seen versions are kept for engine.retention.removedDays, so that it resumes if it comes back.
    # finished_ms: when a notification was delivered or became a dead letter: retention deletes
    # by it, through an index that holds only finished rows.
    db.executescript("""
        ALTER TABLE resources ADD COLUMN removed_ms INTEGER;
        ALTER TABLE outbox ADD COLUMN finished_ms INTEGER;
        UPDATE outbox SET finished_ms = delivered_ms WHERE status = 'delivered';
        UPDATE outbox SET finished_ms = COALESCE(
            (SELECT max(at_ms) FROM attempts WHERE attempts.notification_id = outbox.id), created_ms)
            WHERE status = 'dead';
        CREATE INDEX outbox_finished ON outbox (finished_ms) WHERE status != 'pending';
        CREATE INDEX resources_removed ON resources (removed_ms) WHERE removed_ms IS NOT NULL
    """)


@_step("0005_inbound_webhooks")
def _inbound_webhooks(db: Database) -> None:
    # webhook_tokens: the generated last part of each webhook instance's URL, kept so the URL
    # never changes. inbound_requests: every request that was read (accepted, duplicate or
    # rejected) with its body, for `poller webhooks requests` and `replay`. inbound_events: the
    # ids of the events announced, so a retried request or a second batch announces nothing new.
    db.executescript("""
        CREATE TABLE webhook_tokens (
            instance_id TEXT PRIMARY KEY,
            token TEXT NOT NULL,
            created_ms INTEGER NOT NULL
        );
        CREATE TABLE inbound_requests (
            id INTEGER PRIMARY KEY,
            instance_id TEXT NOT NULL,
            received_ms INTEGER NOT NULL,
            method TEXT NOT NULL,
            content_type TEXT,
            headers TEXT NOT NULL,
            body BLOB NOT NULL,
            sha256 TEXT NOT NULL,
            outcome TEXT NOT NULL,
            status INTEGER NOT NULL,
            reason TEXT,
            events INTEGER NOT NULL DEFAULT 0,
            notification_ids TEXT NOT NULL DEFAULT '[]'
        );
        CREATE INDEX inbound_requests_received ON inbound_requests (received_ms);
        CREATE INDEX inbound_requests_rejected ON inbound_requests (id) WHERE outcome = 'rejected';
        CREATE TABLE inbound_events (
            instance_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            received_ms INTEGER NOT NULL,
            PRIMARY KEY (instance_id, event_id)
        ) WITHOUT ROWID;
        CREATE INDEX inbound_events_received ON inbound_events (received_ms)
    """)


@_step("0006_api_instances")
def _api_instances(db: Database) -> None:
    # api_instances: instances created through the management API (DESIGN §11), with the body as
    # posted and patched, the token given back (also the inbound webhook token), enabled (PUT /
    # DELETE .../enabled) and deleted_ms (DELETE: stopped; kept, so the number is never given
    # again and its pending notifications can still be signed and delivered).
    # instance_numbers: the integer ids the API shows for the configuration file's instances,
    # drawn from the same numbers as the API's own, so no two instances ever share one.
    db.executescript("""
        CREATE TABLE api_instances (
            number INTEGER PRIMARY KEY,
            body TEXT NOT NULL,
            token TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            deleted_ms INTEGER
        );
        CREATE TABLE instance_numbers (
            instance_id TEXT PRIMARY KEY,
            number INTEGER NOT NULL UNIQUE
        );
        CREATE INDEX outbox_instance ON outbox (instance_id, created_ms, seq, id)
    """)


@_step("0007_inbound_events_by_date")
def _inbound_events_by_date(db: Database) -> None:
    # inbound_events keyed by (instance, the event's date, id) instead of (instance, id): event
    # ids are hashes, so a batch of 1,000 wrote 1,000 rows scattered over the whole table (and as
    # many pages to the WAL at its commit); a batch's events are dated close together, so under
    # their date they are written side by side. date_ms: the date as the provider wrote it, read
    # as UTC (the same text always gives the same key), 0 when the event has none. Rows kept so
    # far have no date: -1, which state.inbound.claim_events looks under as well while any are
    # left (retention removes them within the dedupe window).
    # Retention: rows with a date go a date at a time, once no event of that date has come within
    # the window (inbound_event_dates: the last time one did); only the undated need an index of
    # their own times. (An index of every row's time doubled the table and a batch's cost.) Ids
    # are kept as their 16 bytes, not their 36 characters.
    db.executescript("""
        CREATE TABLE inbound_events_by_date (
            instance_id TEXT NOT NULL,
            date_ms INTEGER NOT NULL,
            event_id BLOB NOT NULL,
            received_ms INTEGER NOT NULL,
            PRIMARY KEY (instance_id, date_ms, event_id)
        ) WITHOUT ROWID
    """)
    db.conn.executemany(
        "INSERT INTO inbound_events_by_date (instance_id, date_ms, event_id, received_ms) VALUES (?, -1, ?, ?)",
        ((instance_id, _uuid_bytes(event_id), received_ms) for instance_id, event_id, received_ms
         in db.conn.execute("SELECT instance_id, event_id, received_ms FROM inbound_events")))
    db.executescript("""
        DROP TABLE inbound_events;
        ALTER TABLE inbound_events_by_date RENAME TO inbound_events;
        CREATE INDEX inbound_events_undated ON inbound_events (received_ms) WHERE date_ms <= 0;
        CREATE TABLE inbound_event_dates (
            instance_id TEXT NOT NULL,
            date_ms INTEGER NOT NULL,
            received_ms INTEGER NOT NULL,
            PRIMARY KEY (instance_id, date_ms)
        ) WITHOUT ROWID;
        CREATE INDEX inbound_event_dates_received ON inbound_event_dates (received_ms)
    """)


@_step("0008_outbox_pending_in_write_order")
def _outbox_pending_in_write_order(db: Database) -> None:
    # Delivery reads the pending notifications in write order (rowid), a part at a time; through
    # outbox_status_next each part read and sorted every pending row again (40 ms a part at
    # 50,000 pending). This index holds only the pending ones, by rowid.
    db.execute("CREATE INDEX outbox_pending_rowid ON outbox (status) WHERE status = 'pending'")


@_step("0009_resources_seen_from")
def _resources_seen_from(db: Database) -> None:
    # seen_from_ms: from this instant on, every date version the resource returned is remembered
    # (the latest pruning bound, or where its first window began). A poll never looks further
    # back: after a longer lookback, the versions before it were pruned, and the records there
    # would all be announced again. NULL (files before this step): not known yet.
    db.execute("ALTER TABLE resources ADD COLUMN seen_from_ms INTEGER")


def _uuid_bytes(text: str) -> bytes:
    from state.inbound import event_key  # (state.inbound opens files through this module)

    try:
        return event_key(text)
    except ValueError:  # (never so: ids were always UUIDs; kept as they were, rather than lost)
        return text.encode()


def applied_steps(db: Database) -> list[str]:
    """Names of the steps applied to this file, oldest first (read-only)."""
    return [m.name for m in migrations.applied(db)]


def apply(db: Database) -> None:
    """Apply the pending steps (the caller holds the writer lock)."""
    # sqlite-utils creates its bookkeeping table outside a transaction (a table, then an
    # index): do it in one here, so a crash cannot leave the table without its unique index
    with db.atomic():
        migrations.ensure_migrations_table(db)
    migrations.apply(db)
