"""The hash chain of the security event log: canonical content, hashing and the sealer.

Writers never wait for one another. ``security_event_record`` inserts the event with empty
chain fields in the caller's transaction; once that transaction commits, the sealer gives
each committed, unsealed event, in id order, the next sequence number, the hash of the
event before it and its own HMAC. One sealer runs at a time (a PostgreSQL advisory
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
from audit.models import SecurityEvent
from audit.signals import security_events_sealed

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key of the chain: the bytes of "auditchn".
CHAIN_LOCK_ID = 7022629598041172078
SEAL_BATCH = 1000
BEHIND = timedelta(seconds=1)  # back-pressure on writers beyond this lag (_falling_behind)
# Chain fields first: the sealer fills positions 1-4 of a row it read with them empty.
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


def chain_head(*, model=SecurityEvent, using: str = DEFAULT_DB_ALIAS) -> tuple[int, str]:
    """(sequence, hash) of the last sealed event; (0, GENESIS_HASH) for an empty chain.
    audit_retention never drops the last event, so the head is always a row."""
    head = (
        model.objects.using(using)
        .filter(sequence__isnull=False)
        .order_by("-sequence")
        .values_list("sequence", "hash")
        .first()
    )
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


def _falling_behind(model, using: str) -> bool:
    """Whether the oldest unsealed event waits longer than BEHIND. Then a writer that finds
    the lock taken waits for it (and seals) instead of going back to write more: writers
    slow down to the sealer's pace, and their CPU goes to it, so the chain stays within
    seconds of the log even when more writers than cores write flat out."""
    oldest = (
        model.objects.using(using)
        .filter(sequence__isnull=True)
        .order_by("id")
        .values_list("created_at", flat=True)
        .first()
    )
    return oldest is not None and oldest < timezone.now() - BEHIND


def _pending(model, using: str) -> bool:
    return model.objects.using(using).filter(sequence__isnull=True).exists()


def _seal_batch(model, using: str) -> list[tuple]:
    """Chain up to SEAL_BATCH committed events; call holding the chain lock. Returns the
    sealed rows (``ROW_FIELDS`` order)."""
    sequence, previous = chain_head(model=model, using=using)
    pending = model.objects.using(using).filter(sequence__isnull=True).order_by("id")
    rows = list(pending.values_list(*HASHED_FIELDS)[:SEAL_BATCH])
    if not rows:
        return []
    key_id, key = keys.hmac_current()
    sealed_at = timezone.now()
    connection = connections[using]
    stored_at = connection.ops.adapt_datetimefield_value(sealed_at)
    sealed, params = [], []
    for row in rows:
        sequence += 1
        values = (row[0], sequence, previous, key_id, sealed_at, *row[5:])
        digest = event_hash(values, key)
        sealed.append((*values, digest))
        params.append((sequence, previous, digest, key_id, stored_at, row[0]))
        previous = digest
    table = connection.ops.quote_name(model._meta.db_table)
    seal = (
        f"UPDATE {table} SET sequence = %s, previous_hash = %s, hash = %s, key_id = %s, sealed_at = %s "  # noqa: S608 - the model's table, quoted
        "WHERE id = %s AND sequence IS NULL"
    )
    with connection.cursor() as cursor:
        cursor.executemany(seal, params)
        if cursor.rowcount not in (-1, len(params)):
            raise RuntimeError(f"sealed {cursor.rowcount} of {len(params)} events: another sealer without the lock?")
    return sealed


def _announce(rows: list[tuple]) -> None:
    security_events_sealed.send(sender=SecurityEvent, events=[dict(zip(ROW_FIELDS, row, strict=True)) for row in rows])


def security_event_seal(*, model=SecurityEvent, using: str = DEFAULT_DB_ALIAS) -> int:
    """Chain every committed, unsealed event; return how many this call sealed.

    Safe to call from any number of processes at once. A caller that finds the lock taken
    returns at once: the holder checks for unsealed events again *after* letting go, so an
    event committed before that caller tried the lock is always sealed by someone.
    """
    total = idle_rounds = 0
    sealed: list[tuple] = []
    wait = False
    while idle_rounds < 3:
        if not sealed and not wait and not _lock_free(using):  # a holder going round again skips the probe
            if not _falling_behind(model, using):
                return total
            wait = True  # back-pressure: see _falling_behind
        with transaction.atomic(using=using):
            if not chain_lock(using=using, wait=wait):
                return total
            sealed = _seal_batch(model, using)
            if sealed and model is SecurityEvent:
                transaction.on_commit(partial(_announce, sealed), using=using, robust=True)
        total += len(sealed)
        if len(sealed) < SEAL_BATCH and not _pending(model, using):
            return total
        idle_rounds = 0 if sealed else idle_rounds + 1
    return total


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
    security_event_seal()


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
    if event.sequence is None:
        return None
    key = keys.hmac_keys().get(event.key_id)
    if key is None:
        return None
    row = SecurityEvent.objects.filter(pk=event.pk).values_list(*ROW_FIELDS).first()
    if row is None or event_hash(row[:-1], key) != row[-1]:
        return False
    sequence, previous_hash = row[1], row[2]
    if sequence == 1:
        return previous_hash == GENESIS_HASH
    before = SecurityEvent.objects.filter(sequence=sequence - 1).values_list("hash", flat=True).first()
    if before is not None:
        return before == previous_hash
    from audit.checkpoints import retention_anchor

    anchor = retention_anchor()
    return anchor is not None and anchor.sequence == sequence - 1 and anchor.hash == previous_hash
