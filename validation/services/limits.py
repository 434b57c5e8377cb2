"""Send limits: how many messages the portal may queue, to whom, per sliding window.

Every message to a contact of record (a challenge that sends, an enrolment link) passes
``send_reserve`` inside the transaction that queues it. Limits (``docs/verification.md``):
per person, per technician, per destination (across every organisation), and a global
ceiling per minute and per hour; and nothing at all while the person's verification is
locked. A window slides: "at most 3 per 10 minutes" holds for every 10-minute span.

How the counts stay right:

- The database is the source of truth: one ``SendRecord`` per queued message (the
  destination only as an HMAC). A send is allowed only after counting those rows while
  holding a PostgreSQL advisory transaction lock per limit (taken in one fixed order, so
  two senders cannot deadlock); the row is inserted before the lock is released at commit.
  So concurrent senders are counted one after another. On SQLite, transactions begin
  IMMEDIATE and writers are serialised anyway.
- The cache (Redis in production) remembers, for a limit the database found full, until
  when it stays full. It answers refusals without a lock or a query, which is the hot path
  when someone hammers a button. It is written only from committed rows, and more sends
  only make a full limit last longer, so a refusal from the cache is always true; a cold,
  flushed, stale or unreachable cache only means the database is asked instead. With the
  cache down the limits still hold (they fail closed, on the database).
- Asking the database is one statement that finds, for each limit, its ``maximum``-th
  newest send in the window (which also says when the limit frees up). For a limit of one
  person, technician or destination that walks at most ``maximum`` entries of an index (3,
  500 and 20 at most). A global ceiling counts every send, so each row carries its number
  in the count of all sends (``SendRecord.sequence``, given under the global lock): the
  ``maximum``-th newest is one index lookup, and a ceiling of 100,000 an hour costs what
  the per-person limit of three does.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Person, User
from accounts.rows import insert, statement_cursor
from audit.events import EventType
from audit.recorder import security_event_record
from validation import crypto
from validation.models import SendRecord
from validation.services._common import VerificationError
from validation.services.requests import person_lock_reason_now

logger = logging.getLogger(__name__)

PERSON_MAX = 3  # DESIGN.md: at most 3 sends per person per 10 minutes (may be lowered)
PERSON_WINDOW = timedelta(minutes=10)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
RECORDS_KEPT = timedelta(days=1)  # longer than any window
CACHE_PREFIX = "validation:send-limit:v2:"

MESSAGES = {
    "person": "at most {maximum} messages to this person per {window}",
    "technician": "you may send at most {maximum} verification messages per {window}",
    "destination": "at most {maximum} messages to {masked} per {window}, counted across every organisation",
    "global_minute": "the portal sends at most {maximum} messages per {window} in all",
    "global_hour": "the portal sends at most {maximum} messages per {window} in all",
}
WINDOW_TEXT = {PERSON_WINDOW: "10 minutes", HOUR: "hour", MINUTE: "minute"}


@dataclass(frozen=True)
class Limit:
    name: str  # a key of MESSAGES; recorded in the security event
    key: str  # cache and lock identity; holds no contact in clear
    maximum: int
    window: timedelta
    column: str | None = None  # this limit's rows of SendRecord: column = value (None: every row)
    value: Any = None


class SendLimited(VerificationError):
    """A message was refused by a send limit. ``message`` tells the technician which limit
    and when to try again; the rest is for the security event."""

    def __init__(self, message: str, *, organization: Any, target: Any, details: dict[str, Any]):
        super().__init__(message)
        self.organization = organization
        self.target = target
        self.details = details


def person_maximum() -> int:
    return min(settings.VERIFICATION_SEND_LIMIT_PERSON, PERSON_MAX)


READ_NOW = object()  # send_reserve's lock_reason when the caller has not read it


def limits_for(*, person: Person, technician: User, destination_hash: str) -> list[Limit]:
    return [
        Limit("person", f"person:{person.pk}", person_maximum(), PERSON_WINDOW, "person_id", person.pk),
        Limit(
            "technician",
            f"technician:{technician.pk}",
            settings.VERIFICATION_SEND_LIMIT_TECHNICIAN,
            HOUR,
            "technician_id",
            technician.pk,
        ),
        Limit(
            "destination",
            f"destination:{destination_hash}",
            settings.VERIFICATION_SEND_LIMIT_DESTINATION,
            HOUR,
            "destination_hash",
            destination_hash,
        ),
        Limit("global_minute", "global:minute", settings.VERIFICATION_SEND_LIMIT_GLOBAL_MINUTE, MINUTE),
        Limit("global_hour", "global:hour", settings.VERIFICATION_SEND_LIMIT_GLOBAL_HOUR, HOUR),
    ]


def send_reserve(
    *,
    person: Person,
    technician: User,
    destination: str,
    destination_masked: str,
    kind: str,
    method: str = "",
    target: Any,
    per_person: bool = True,
    lock_reason: str | None | object = READ_NOW,
) -> SendRecord:
    """Count one message to ``destination`` (a phone number or email of record) against
    every limit, or raise SendLimited. Call it inside the transaction that queues the
    message, as late as possible: the lock it takes is held until that transaction ends.
    ``per_person=False`` leaves the message out of the per-person limit (an approver's
    identity codes, which the approver asks for and which are capped per link).
    ``lock_reason``: whether verification is locked for the person, when the caller read
    it in this transaction; otherwise it is read now."""
    if not connection.in_atomic_block:
        raise RuntimeError("send_reserve must run inside the transaction that queues the message")
    now = timezone.now()
    context = {"organization": person.organization, "target": target, "person": person, "kind": kind}
    lock = person_lock_reason_now(person) if lock_reason is READ_NOW else lock_reason
    if lock:
        raise _refusal(
            f"No message sent: verification is locked for this person ({lock}). An org admin must lift the lock.",
            limit="person_locked",
            **context,
        )
    destination_hash = crypto.destination_hmac(destination)
    limits = limits_for(person=person, technician=technician, destination_hash=destination_hash)
    if not per_person:
        limits = [limit for limit in limits if limit.name != "person"]
    full = _cached_full(limits, now)
    if full is None:
        _lock(limits)
        now = timezone.now()  # the ledger's order is the lock's: stamp the row in it
        ledger = _ledger(limits, now)
        full = _first_full(limits, ledger.full_until)
        if full is None:
            record = SendRecord(
                kind=kind,
                method=method,
                organization=person.organization,
                person=person if per_person else None,
                technician=technician,
                destination_hash=destination_hash,
                created_at=now,
                sequence=ledger.newest_sequence + 1,
            )
            insert(record)  # every text sent counts: written out (accounts.rows)
            return record
    limit, retry_at = full
    raise _limit_refusal(limit, retry_at, masked=destination_masked, method=method, **context)


@dataclass(frozen=True)
class Ledger:
    full_until: dict[str, datetime]  # limit key -> when a message may pass it again
    newest_sequence: int  # of the newest send (0: none kept)


# One limit's query; the table and column names are the code's own, every value is bound.
# A limit of one person, technician or destination: its maximum-th newest send in the
# window, walking at most that many entries of its (column, created_at) index.
_BRANCH = (
    "SELECT * FROM (SELECT %s AS limit_key, created_at, sequence FROM {table} "
    "WHERE {column} = %s AND created_at > %s ORDER BY created_at DESC LIMIT 1 OFFSET %s) AS l{n}"
)
# A global ceiling counts every send: its maximum-th newest is the one numbered maximum - 1
# below the newest (or the nearest below that, should a row ever be missing), one step down
# the sequence's index however large the maximum; then is it inside the window?
_GLOBAL_BRANCH = (
    "SELECT * FROM (SELECT %s AS limit_key, created_at, sequence FROM {table} "
    "WHERE sequence <= (SELECT sequence FROM newest) - %s ORDER BY sequence DESC LIMIT 1) AS l{n} "
    "WHERE created_at > %s"
)
_NEWEST = "WITH newest AS (SELECT sequence FROM {table} ORDER BY sequence DESC LIMIT 1) "
_NEWEST_BRANCH = "SELECT NULL, NULL, sequence FROM newest"


def _ledger(limits: list[Limit], now: datetime) -> Ledger:
    """The limits that are full now, each with the time it lets a message through again (when
    the ``maximum``-th newest send inside its window leaves the window), and the newest send's
    number, in one statement: a UNION ALL of each limit's own indexed query (written out, as
    every send asks it; each branch a subquery, so that SQLite takes its LIMIT too)."""
    table = SendRecord._meta.db_table
    branches: list[str] = []
    params: list[Any] = []
    for n, limit in enumerate(limits):
        if limit.column is None:
            branches.append(_GLOBAL_BRANCH.format(table=table, n=n))
            params += [limit.key, limit.maximum - 1, now - limit.window]
        else:
            branches.append(_BRANCH.format(table=table, column=limit.column, n=n))
            params += [limit.key, limit.value, now - limit.window, limit.maximum - 1]
    branches.append(_NEWEST_BRANCH)
    with statement_cursor() as cursor:
        cursor.execute(_NEWEST.format(table=table) + " UNION ALL ".join(branches), params)
        rows = cursor.fetchall()
    windows = {limit.key: limit.window for limit in limits}
    full_until = {key: _aware(created_at) + windows[key] for key, created_at, _ in rows if key is not None}
    newest = [sequence for key, _, sequence in rows if key is None]
    return Ledger(full_until, newest[0] if newest else 0)


def _aware(value: datetime | str) -> datetime:
    """A time from a raw query: SQLite returns text, PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _first_full(limits: list[Limit], full_until: dict[str, datetime]) -> tuple[Limit, datetime] | None:
    """The first full limit, remembered in the cache until it frees up (a fact about committed
    rows: later sends only make it last longer)."""
    for limit in limits:
        retry_at = full_until.get(limit.key)
        if retry_at is not None:
            _cache_write(_cache_key(limit), retry_at)
            return limit, retry_at
    return None


def _cached_full(limits: list[Limit], now: datetime) -> tuple[Limit, datetime] | None:
    try:
        stored = cache.get_many([_cache_key(limit) for limit in limits])
    except Exception as exc:  # an accelerator only: the database decides next
        logger.warning("Send-limit cache unreadable (%s); counting in the database", type(exc).__name__)
        return None
    for limit in limits:
        until = stored.get(_cache_key(limit))
        if isinstance(until, float) and until > now.timestamp():
            return limit, datetime.fromtimestamp(until, tz=UTC)
    return None


def _cache_write(key: str, until: datetime) -> None:
    try:
        cache.set(key, until.timestamp(), timeout=max(1, int((until - timezone.now()).total_seconds()) + 1))
    except Exception as exc:  # the database stays right; the next send asks it
        logger.warning("Send-limit cache unwritable (%s)", type(exc).__name__)


def _cache_key(limit: Limit) -> str:
    """Per limit and maximum: a full limit stays full only for the maximum it was full at."""
    return f"{CACHE_PREFIX}{limit.key}:{limit.maximum}"


def _lock(limits: list[Limit]) -> None:
    """Serialise senders that share a limit until their transactions end (PostgreSQL)."""
    if connection.vendor != "postgresql":
        return  # SQLite: every write transaction begins IMMEDIATE, one writer at a time
    ids = sorted({_lock_id(limit.key) for limit in limits})
    with statement_cursor() as cursor:
        # One statement; PostgreSQL evaluates a volatile function in the select list after
        # the ORDER BY, so the locks are taken in id order and two senders cannot deadlock.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(lock_id) FROM unnest(%s::bigint[]) AS t(lock_id) ORDER BY lock_id", [ids]
        )


def _lock_id(key: str) -> int:
    digest = hashlib.sha256(f"send-limit:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _limit_refusal(limit: Limit, retry_at: datetime, *, masked: str, method: str, **context) -> SendLimited:
    what = MESSAGES[limit.name].format(maximum=limit.maximum, window=WINDOW_TEXT[limit.window], masked=masked)
    return _refusal(
        f"Send limit reached: {what}. Try again at {retry_at:%H:%M:%S} UTC.",
        limit=limit.name,
        maximum=limit.maximum,
        window_seconds=int(limit.window.total_seconds()),
        retry_at=retry_at.isoformat(),
        destination=masked,
        method=method,
        **context,
    )


def _refusal(message: str, *, organization, target, person: Person, kind: str, **details) -> SendLimited:
    scope = {"verification": target.pk} if target is not person else {}
    return SendLimited(
        message,
        organization=organization,
        target=target,
        details={**scope, "person": person.pk, "kind": kind, **details},
    )


F = TypeVar("F", bound=Callable[..., Any])


def records_refusals(service: F) -> F:
    """Put outside a service's ``transaction.atomic``: a SendLimited refusal rolls the
    service back, then is recorded as a security event in a transaction of its own
    (inside the caller's, when there is one) and raised on to the view."""

    @functools.wraps(service)
    def wrapper(*args, **kwargs):
        try:
            return service(*args, **kwargs)
        except SendLimited as refusal:
            send_limited_record(refusal, actor=kwargs.get("actor"), request=kwargs.get("request"))
            raise

    return wrapper  # type: ignore[return-value]


@transaction.atomic
def send_limited_record(refusal: SendLimited, *, actor: Any = None, request: Any = None) -> None:
    security_event_record(
        event_type=EventType.VERIFICATION_SEND_LIMITED,
        actor=actor,
        organization=refusal.organization,
        target=refusal.target,
        details=refusal.details,
        request=request,
    )


def send_records_prune(*, now: datetime) -> int:
    """Drop ledger rows no window looks at any more. Returns how many went."""
    deleted, _ = SendRecord.objects.filter(created_at__lt=now - RECORDS_KEPT).delete()
    return deleted
