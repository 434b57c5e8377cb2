"""The compliance report of one organisation over a period, built from its security events
alone (so it reads no other app's tables and outlives what it describes).

Grants are read from ``access.grant_activated`` / ``access.break_glass_activated`` and the
events that end them (expired, revoked, released), helpdesk actions from ``action.*``, each
through its details (``grant``, ``role``, ``expires_at``, ``verification``, ``break_glass``);
a period without them shows empty sections, never an error.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Organization
from audit.events import EventType
from audit.expressions import DetailsKey, Subject
from audit.models import SecurityEvent
from audit.selectors import utc_day_start

LIST_LIMIT = 200  # rows per listed section; the counts above each list are complete
CHALLENGE_LOOKBACK = timedelta(days=1)  # a challenge answered in the period may start before it

REQUEST_OUTCOMES = (
    (EventType.VERIFICATION_REQUEST_CREATED, "Started"),
    (EventType.VERIFICATION_REQUEST_VERIFIED, "Verified"),
    (EventType.VERIFICATION_REQUEST_CONSUMED, "Used for an action"),
    (EventType.VERIFICATION_REQUEST_FAILED, "Failed"),
    (EventType.VERIFICATION_REQUEST_EXPIRED, "Expired"),
    (EventType.VERIFICATION_REQUEST_CANCELLED, "Cancelled"),
    (EventType.VERIFICATION_PERSON_LOCKED, "Person locked"),
    (EventType.VERIFICATION_FRAUD_REPORTED, "Fraud reported"),
)
# Challenge outcome per event type; denials and fraud reports name the challenge, not its method.
CHALLENGE_OUTCOMES = {
    EventType.VERIFICATION_CHALLENGE_APPROVED: "approved",
    EventType.VERIFICATION_CHALLENGE_WRONG_ANSWER: "wrong answer",
    EventType.VERIFICATION_CHALLENGE_DENIED: "denied",
    EventType.VERIFICATION_FRAUD_REPORTED: "fraud reported",
    EventType.VERIFICATION_CHALLENGE_EXPIRED: "expired",
    EventType.VERIFICATION_CHALLENGE_SEND_FAILED: "not delivered",
    EventType.VERIFICATION_CHALLENGE_UNDELIVERED: "not delivered",
}
OUTCOME_ORDER = ("approved", "wrong answer", "denied", "fraud reported", "expired", "not delivered")
_NAMED_BY_CHALLENGE = (EventType.VERIFICATION_CHALLENGE_DENIED, EventType.VERIFICATION_FRAUD_REPORTED)
GRANT_STARTS = ("access.grant_activated", "access.break_glass_activated")
GRANT_ENDS = ("access.grant_expired", "access.grant_revoked", "access.grant_released")


@dataclass
class MethodOutcomes:
    method: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def cells(self) -> list[int]:
        return [self.counts.get(outcome, 0) for outcome in OUTCOME_ORDER]


@dataclass
class RoleGrants:
    role: str
    durations: list[timedelta] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.durations)

    @property
    def total(self) -> timedelta:
        return sum(self.durations, timedelta())

    @property
    def average(self) -> timedelta:
        return self.total / self.count if self.count else timedelta()

    @property
    def longest(self) -> timedelta:
        return max(self.durations, default=timedelta())


@dataclass
class ActionRow:
    event: SecurityEvent
    verification: str
    grant: str
    role: str


@dataclass
class ComplianceReport:
    organization: Organization
    since: date
    until: date
    requests: list[tuple[str, int]]
    methods: list[MethodOutcomes]
    failed: list[SecurityEvent]
    locked: list[SecurityEvent]
    fraud: list[SecurityEvent]
    grants: list[RoleGrants]
    break_glass: list[SecurityEvent]
    actions: list[ActionRow]
    counts: dict[str, int]
    outcome_names: tuple[str, ...] = OUTCOME_ORDER

    @property
    def failed_count(self) -> int:
        return self.counts.get(EventType.VERIFICATION_REQUEST_FAILED, 0)

    @property
    def locked_count(self) -> int:
        return self.counts.get(EventType.VERIFICATION_PERSON_LOCKED, 0)

    @property
    def fraud_count(self) -> int:
        return self.counts.get(EventType.VERIFICATION_FRAUD_REPORTED, 0)

    @property
    def action_counts(self) -> dict[str, int]:
        """Helpdesk actions performed, refused (grant or verification missing) and failed
        (the directory connector did not complete them)."""
        return {
            "performed": self.counts.get(EventType.ACTION_PERFORMED, 0),
            "refused": self.counts.get(EventType.ACTION_REFUSED, 0),
            "failed": self.counts.get(EventType.ACTION_FAILED, 0),
        }


def compliance_report(*, organization: Organization, since: date, until: date) -> ComplianceReport:
    """The report for ``organization`` from ``since`` to ``until`` (inclusive, UTC days).
    The caller has checked that the user may see the organisation."""
    start, end = utc_day_start(since), utc_day_start(until + timedelta(days=1))
    events = SecurityEvent.objects.filter(
        organization_id=organization.pk, created_at__gte=start, created_at__lt=end
    ).order_by()
    counts, methods = _verification_counts(events, organization_id=organization.pk, start=start)
    grant_roles, grants = _grants(events, period_end=end)

    def listed(event_type: str) -> list[SecurityEvent]:
        return list(events.filter(event_type=event_type).order_by("-created_at", "-id")[:LIST_LIMIT])

    return ComplianceReport(
        organization=organization,
        since=since,
        until=until,
        requests=[(label, counts.get(code, 0)) for code, label in REQUEST_OUTCOMES],
        methods=methods,
        failed=listed(EventType.VERIFICATION_REQUEST_FAILED),
        locked=listed(EventType.VERIFICATION_PERSON_LOCKED),
        fraud=listed(EventType.VERIFICATION_FRAUD_REPORTED),
        grants=grants,
        break_glass=_break_glass(events),
        actions=_actions(events, grant_roles),
        counts=counts,
    )


def _verification_counts(events, *, organization_id: int, start: datetime) -> tuple[dict, list[MethodOutcomes]]:
    """Verification and action events by type, and challenge outcomes by method: one pass
    over them."""
    rows = (
        events.filter(Q(event_type__startswith="verification.") | Q(event_type__startswith="action."))
        .annotate(method=DetailsKey("method"))
        .values("event_type", "method")
        .annotate(n=Count("id"))
        .values_list("event_type", "method", "n")
    )
    counts: Counter = Counter()
    table: dict[str, Counter] = defaultdict(Counter)
    for event_type, method, n in rows:
        counts[event_type] += n
        if event_type in CHALLENGE_OUTCOMES and event_type not in _NAMED_BY_CHALLENGE:
            table[method or "unknown"][CHALLENGE_OUTCOMES[event_type]] += n
    named = list(events.filter(event_type__in=_NAMED_BY_CHALLENGE).values_list("event_type", "details")[:10_000])
    details = [d for _, d in named if isinstance(d, dict)]
    methods_by_challenge = _challenge_methods(organization_id, start, details)
    for event_type, details in named:
        method = methods_by_challenge.get(details.get("challenge"), "unknown")
        table[method][CHALLENGE_OUTCOMES[event_type]] += 1
    return dict(counts), [MethodOutcomes(method=m, counts=dict(table[m])) for m in sorted(table)]


def _challenge_methods(organization_id: int, start: datetime, named: list[dict]) -> dict[int, str]:
    """The method of each challenge a denial or fraud report names, from its
    ``challenge_created`` event, found through the person the events are about (the subject
    index) from CHALLENGE_LOOKBACK before the period on."""
    wanted = {d["challenge"] for d in named if isinstance(d.get("challenge"), int)}
    subjects = sorted({f"accounts.person:{d['person']}" for d in named if d.get("person") is not None})
    if not wanted or not subjects:
        return {}
    created = (
        SecurityEvent.objects.filter(
            organization_id=organization_id,
            event_type=EventType.VERIFICATION_CHALLENGE_CREATED,
            created_at__gte=start - CHALLENGE_LOOKBACK,
        )
        .alias(subject=Subject())
        .filter(subject__in=subjects)
        .values_list("details", flat=True)
    )
    return {d["challenge"]: d.get("method", "unknown") for d in created if d.get("challenge") in wanted}


def _grant_key(event: SecurityEvent | _AccessRow) -> str:
    """The grant an access event is about: ``details["grant"]``, else its target."""
    details = event.details or {}
    grant = details.get("grant", details.get("grant_id"))
    if grant is None and event.target_type == "access.grant":
        grant = event.target_id
    return str(grant) if grant is not None else f"{event.target_type}:{event.target_id}"


def _role_of(event: SecurityEvent | _AccessRow) -> str:
    """The role's name from the details, else from a grant's label ("<role> for <technician> in ...")."""
    role = _role_name(event.details or {})
    if role:
        return role
    if event.target_type == "access.grant" and " for " in event.target_label:
        return event.target_label.split(" for ", 1)[0]
    return event.target_label or "unknown role"


def _role_name(details: dict) -> str:
    role = details.get("role_name") or details.get("role")
    return role if isinstance(role, str) else ""


def _break_glass(events) -> list[SecurityEvent]:
    """Access events of break-glass use: the code says so, or the details do."""
    used = events.filter(event_type__startswith="access.").filter(
        Q(event_type__contains="break_glass") | Q(details__break_glass=True)
    )
    return list(used.order_by("-created_at", "-id")[:LIST_LIMIT])


@dataclass(frozen=True)
class _AccessRow:
    """The columns of an access event the grant durations need (no model instance each)."""

    event_type: str
    target_type: str
    target_id: str
    target_label: str
    details: dict
    created_at: datetime


def _grants(events, *, period_end: datetime) -> tuple[dict[str, str], list[RoleGrants]]:
    """Grants started in the period, by role, each lasting until its end event (expired,
    revoked, released) in the period, else its planned expiry (or now, if that is earlier),
    else the end of the period (or now). Memory grows with the grants, not the events."""
    rows = (
        events.filter(event_type__in=GRANT_STARTS + GRANT_ENDS)
        .order_by("created_at", "id")
        .values_list("event_type", "target_type", "target_id", "target_label", "details", "created_at")
    )
    starts: dict[str, tuple[str, datetime, datetime | None]] = {}
    ends: dict[str, datetime] = {}
    for values in rows.iterator(chunk_size=2000):
        event = _AccessRow(*values)
        key = _grant_key(event)
        if event.event_type in GRANT_STARTS:
            if key not in starts:
                starts[key] = (_role_of(event), event.created_at, _parse_time((event.details or {}).get("expires_at")))
        else:
            ends.setdefault(key, event.created_at)
    by_role: dict[str, RoleGrants] = {}
    now = timezone.now()
    for key, (role, started, planned) in starts.items():
        end = ends.get(key) or (min(planned, now) if planned else min(period_end, now))
        by_role.setdefault(role, RoleGrants(role=role)).durations.append(max(end - started, timedelta()))
    return {key: role for key, (role, _, _) in starts.items()}, sorted(by_role.values(), key=lambda r: r.role)


def _parse_time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    parsed = parse_datetime(value)
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _actions(events, grant_roles: dict[str, str]) -> list[ActionRow]:
    """Each action performed, with the verification and the grant it stood on."""
    rows = []
    performed = events.filter(event_type=EventType.ACTION_PERFORMED).order_by("-created_at", "-id")
    for event in performed[:LIST_LIMIT]:
        details = event.details or {}
        grant = details.get("grant")
        rows.append(
            ActionRow(
                event=event,
                verification=str(details.get("verification") or ""),
                grant=str(grant) if grant is not None else "",
                role=grant_roles.get(str(grant), "") or _role_name(details),
            )
        )
    return rows
