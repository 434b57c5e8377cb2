"""The hash chain of the security event log: canonical content, hashing and the sealer.

Writers never wait for one another. ``security_event_record`` inserts the event in the
caller's transaction (the database queues its id in ``UnsealedEvent``); once that
transaction commits, the sealer gives each committed, queued event, in id order, a
``ChainLink``: the next sequence number, the hash of the event before it and its own HMAC.
The event row itself is never updated. One sealer runs at a time (a PostgreSQL advisory
transaction lock; on SQLite, the database's single write lock), so the chain cannot fork;
an event committed while another process holds the lock is sealed by that process before
it stops (``security_event_seal``), so none is missed. Each process runs the sealer after a
commit at most once per ``AUDIT_SEAL_INTERVAL_MS``, and a beat task runs it every 3 seconds,
so an event waits at most a few seconds for its link. docs/audit.md has the measurements behind this choice.

Canonical content (what the HMAC covers), version 1: a JSON object of every column except
``hash`` (``HASHED_FIELDS``), keys sorted at every level, no whitespace
(``separators=(",", ":")``), non-ASCII as UTF-8, times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``
in UTC, the source address as text, absent values as ``null``. The hash is the lowercase
hex HMAC-SHA256 of those bytes under the key named by ``key_id``. The first event's
``previous_hash`` is ``GENESIS_HASH``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from audit import keys
from audit.models import ChainLink, SecurityEvent, UnsealedEvent
from audit.signals import security_events_sealed

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key of the chain: the bytes of "auditchn".
CHAIN_LOCK_ID = 7022629598041172078
SEAL_BATCH = 1000
BEHIND = timedelta(seconds=1)  # back-pressure on writers beyond this lag (_falling_behind)
# Chain fields (the ChainLink's) first, then the event's own columns.
HASHED_FIELDS = (
    "id",
    "sequence",
    "previous_hash",
    "key_id",
    "sealed_at",
    "event_type",
    "actor_kind",
    "actor_id",
    "actor_label",
    "organization_id",
    "organization_label",
    "target_type",
    "target_id",
    "target_label",
    "request_id",
    "source_ip",
    "user_agent",
    "details",
    "created_at",
)
ROW_FIELDS = (*HASHED_FIELDS, "hash")
LINK_FIELDS = ("sequence", "previous_hash", "key_id", "sealed_at")
EVENT_FIELDS = HASHED_FIELDS[len(LINK_FIELDS) + 1 :]  # after "id"
# ROW_FIELDS as ORM paths from a ChainLink (audit.walk, event_link_verifies).
LINK_ROW_PATHS = tuple(
    "event_id" if name == "id" else name if name in (*LINK_FIELDS, "hash") else f"event__{name}" for name in ROW_FIELDS
)
_TIMES = ("created_at", "sealed_at")


def utc_text(value: datetime | str | None) -> str | None:
    """A time as the canonical content writes it; a string is taken as already written so."""
    if value is None or isinstance(value, str):
        return value
    if value.utcoffset():
        value = value.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond:06d}Z"


def canonical_content(values: Sequence[Any]) -> bytes:
    """The bytes the HMAC covers, from a row's ``HASHED_FIELDS`` values as the ORM reads them.
    (``audit.verify`` may pass the times already as canonical text and ``details`` as JSON text.)"""
    content = dict(zip(HASHED_FIELDS, values, strict=True))
    for name in _TIMES:
        content[name] = utc_text(content[name])
    if content["source_ip"] is not None:
        content["source_ip"] = str(content["source_ip"])
    if isinstance(content["details"], str):
        content["details"] = json.loads(content["details"])
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(values: Sequence[Any], key: bytes) -> str:
    return hmac.new(key, canonical_content(values), hashlib.sha256).hexdigest()


def chain_lock(*, using: str = DEFAULT_DB_ALIAS, wait: bool = True) -> bool:
    """Hold the chain's lock until the current transaction ends; False if ``wait`` is off and
    another process has it. Call inside ``transaction.atomic``. On SQLite the transaction
    already holds the database's write lock (``BEGIN IMMEDIATE``, config/settings.py)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return True
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [CHAIN_LOCK_ID])
        row = cursor.fetchone()
    return wait or bool(row[0])


def chain_head(*, using: str = DEFAULT_DB_ALIAS) -> tuple[int, str]:
    """(sequence, hash) of the last link; (0, GENESIS_HASH) for an empty chain.
    audit_retention never drops the last event, so the head is always a row."""
    head = ChainLink.objects.using(using).order_by("-sequence").values_list("sequence", "hash").first()
    return head or (0, GENESIS_HASH)


def _lock_free(using: str) -> bool:
    """A one-statement probe: is nobody holding the chain lock right now? Most writers find
    it taken and stop after this one round trip instead of a transaction's three. (In
    autocommit the probe's own lock ends with its statement.)"""
    connection = connections[using]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [CHAIN_LOCK_ID])
        return bool(cursor.fetchone()[0])


def _falling_behind(using: str) -> bool:
    """Whether the oldest unsealed event waits longer than BEHIND. Then a writer that finds
    the lock taken waits for it and seals instead of going back to write more: writers slow
    down to the sealer's pace, and their CPU goes to it, so the chain stays within seconds
    of the log even when more writers than cores write flat out. One turn per wait: a
    writer that waited looks again before waiting again, and leaves once the chain is no
    longer behind (waiting for every turn until the queue was empty held nearly every writer
    in the lock's queue, sealing a few events each, while none wrote: docs/benchmarks.md)."""
    first = UnsealedEvent.objects.using(using).order_by("event_id").values_list("event_id", flat=True)[:1]
    oldest = SecurityEvent.objects.using(using).filter(pk__in=first).values_list("created_at", flat=True).first()
    return oldest is not None and oldest < timezone.now() - BEHIND


def _pending(using: str) -> bool:
    return UnsealedEvent.objects.using(using).exists()


def _seal_batch(using: str) -> list[tuple]:
    """Link up to SEAL_BATCH committed, queued events; call holding the chain lock. Returns
    the sealed rows (``ROW_FIELDS`` order)."""
    queue = UnsealedEvent.objects.using(using).order_by("event_id").values_list("event_id", flat=True)
    queued = list(queue[:SEAL_BATCH])
    if not queued:
        return []
    sequence, previous = chain_head(using=using)
    events = SecurityEvent.objects.using(using).filter(pk__in=queued).order_by("id")
    key_id, key = keys.hmac_current()
    sealed_at = timezone.now()
    sealed, links = [], []
    for row in events.values_list("id", *EVENT_FIELDS):
        sequence += 1
        values = (row[0], sequence, previous, key_id, sealed_at, *row[1:])
        digest = event_hash(values, key)
        sealed.append((*values, digest))
        links.append((sequence, row[0], previous, digest))
        previous = digest
    _insert_links(links, key_id=key_id, sealed_at=sealed_at, queued=queued, using=using)
    return sealed


def _insert_links(links: list[tuple], *, key_id: str, sealed_at, queued: list[int], using: str) -> None:
    """Insert the batch's links (sequence, event id, previous hash, hash) and take the
    queued ids off the queue (a queued id without an event, written and deleted by hand,
    too). ``sequence`` is the links' key and ``event`` unique: a second sealer (there is
    none, the lock) could neither fork the chain nor link an event twice."""
    connection = connections[using]
    quote = connection.ops.quote_name
    table, queue = quote(ChainLink._meta.db_table), quote(UnsealedEvent._meta.db_table)
    columns = "sequence, event_id, previous_hash, hash, key_id, sealed_at"
    stored_at = connection.ops.adapt_datetimefield_value(sealed_at)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one statement each, whatever the batch's size
            sequences, event_ids, previous, hashes = [list(c) for c in zip(*links, strict=True)] if links else [[]] * 4
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT s, e, p, h, %s, %s "  # noqa: S608 - quoted table names
                "FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[]) AS u(s, e, p, h)",
                [key_id, stored_at, sequences, event_ids, previous, hashes],
            )
            cursor.execute(f"DELETE FROM {queue} WHERE event_id = ANY(%s::bigint[])", [queued])  # noqa: S608
        else:
            rows = [(*link, key_id, stored_at) for link in links]
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s, %s)", rows)  # noqa: S608
            cursor.executemany(f"DELETE FROM {queue} WHERE event_id = %s", [(pk,) for pk in queued])  # noqa: S608


def _announce(rows: list[tuple]) -> None:
    security_events_sealed.send(sender=SecurityEvent, events=[dict(zip(ROW_FIELDS, row, strict=True)) for row in rows])


def security_event_seal(*, using: str = DEFAULT_DB_ALIAS, batches: int | None = None) -> int:
    """Chain every committed, unsealed event; return how many this call sealed.

    Safe to call from any number of processes at once. A caller that finds the lock taken
    returns at once: the holder checks for unsealed events again *after* letting go, so an
    event committed before that caller tried the lock is sealed by someone. ``batches``
    bounds how many times the holder goes round (the after-commit runs: ``_seal_committed``);
    without it, it goes round until the queue is empty (the beat task, commands, tests).
    """
    total = idle_rounds = rounds = 0
    sealed: list[tuple] = []
    while idle_rounds < 3:
        rounds += 1
        wait = False
        if not sealed and not _lock_free(using):  # a holder going round again skips the probe
            if not _falling_behind(using):
                return total
            wait = True  # back-pressure, one turn at a time: see _falling_behind
        with transaction.atomic(using=using):
            if not chain_lock(using=using, wait=wait):
                return total
            sealed = _seal_batch(using)
            if sealed:
                transaction.on_commit(partial(_announce, sealed), using=using, robust=True)
        total += len(sealed)
        if rounds == batches or (len(sealed) < SEAL_BATCH and not _pending(using)):
            return total
        idle_rounds = 0 if sealed else idle_rounds + 1
    return total


# An after-commit run seals what was committed before it began, then looks once more after
# letting go: an event committed while its first batch held the lock is sealed by that look.
# It does not chase the tail while other processes keep committing (on a busy portal that
# chase was a string of small batches, each a transaction of seven statements:
# docs/audit.md); what it leaves is sealed by the next run in any process, within
# AUDIT_SEAL_INTERVAL_MS while the portal is busy, or by the beat task.
AFTER_COMMIT_BATCHES = 2
_last_seal = -float("inf")  # when this process last ran the sealer after a commit (monotonic)
_last_seal_lock = threading.Lock()


def _seal_committed() -> None:
    """At most once per ``AUDIT_SEAL_INTERVAL_MS`` per process: one run seals every process's
    committed events, so a busy process need not run it after each of its own commits (each
    run costs seven statements). An event committed in between is sealed by the next run in
    any process, or by the beat task (every 3 s) when every process falls quiet."""
    global _last_seal
    with _last_seal_lock:
        now = time.monotonic()
        if (now - _last_seal) * 1000 < settings.AUDIT_SEAL_INTERVAL_MS:
            return
        _last_seal = now
    security_event_seal(batches=AFTER_COMMIT_BATCHES)


def seal_after_commit(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Run the sealer once the current transaction commits: once per transaction, however
    many events it records. Outside a transaction it runs now. A failure is logged, never
    raised: the caller's change is already committed and the beat backstop seals later."""
    connection = connections[using]
    if connection.in_atomic_block and any(entry[1] is _seal_committed for entry in connection.run_on_commit):
        return
    transaction.on_commit(_seal_committed, using=using, robust=True)


def event_link_verifies(event: SecurityEvent) -> bool | None:
    """Whether this event's link holds: its hash matches its content under its key, and its
    ``previous_hash`` is the hash of the event one place earlier (or of the genesis, or of
    the signed retention checkpoint that replaced it). None while it waits for the sealer
    or when its key is not configured here. ``audit_verify`` checks the whole chain."""
    row = ChainLink.objects.filter(event_id=event.pk).values_list(*LINK_ROW_PATHS).first()
    if row is None:
        return None
    key = keys.hmac_keys().get(row[ROW_FIELDS.index("key_id")])
    if key is None:
        return None
    if event_hash(row[:-1], key) != row[-1]:
        return False
    sequence, previous_hash = row[1], row[2]
    if sequence == 1:
        return previous_hash == GENESIS_HASH
    before = ChainLink.objects.filter(sequence=sequence - 1).values_list("hash", flat=True).first()
    if before is not None:
        return before == previous_hash
    from audit.checkpoints import retention_anchor

    anchor = retention_anchor()
    return anchor is not None and anchor.sequence == sequence - 1 and anchor.hash == previous_hash
