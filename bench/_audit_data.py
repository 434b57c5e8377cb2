"""The data of bench/audit_views.py: a year of a helpdesk's security events, written with
COPY already sealed (each with its chain link), and as many django-auditlog LogEntry rows.

Twelve client organisations of very different sizes, 60 technicians (each on one to three
of them), 40,000 people; verification flows (request, challenge, wrong answers, approval or
denial or a fraud report, the verified result used for an action), grants (request,
approval, activation, expiry), technicians' sign-ins and directory changes. Every event has
its link in ``audit_chainlink`` (every row is "sealed"), but with stand-in hashes: nothing
here verifies the chain (bench/audit.py loads a valid one for ``audit_verify``).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

SEED = 20_261_129
ORGS = (  # name, share of the events
    ("Northwind Traders", 30),
    ("Contoso Health", 20),
    ("Fabrikam Logistics", 12),
    ("Tailspin Air", 9),
    ("Litware Legal", 7),
    ("Adatum Energy", 6),
    ("Wingtip Retail", 5),
    ("Proseware Labs", 4),
    ("Lucerne Publishing", 3),
    ("Woodgrove Credit", 2),
    ("Margie Travel", 1.5),
    ("Trey Research", 0.5),
)
AUDITED = (3, 6, 9)  # the auditor's organisations: about 16% of the events
TECHNICIANS = 60
PEOPLE = 40_000
START = datetime(2025, 11, 1, tzinfo=UTC)
SPAN = timedelta(days=365)
AUDITOR_EMAIL = "bench-auditor@msp.example"
ADMIN_EMAIL = "bench-admin@msp.example"
METHODS = ("push", "sms_code", "totp")
ACTIONS = ("password_reset", "mfa_reset", "account_unlock", "contact_change")
EVENTS_PER_STORY = 6.7  # the average of the mix below, so the rows span SPAN
AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
COLUMNS = (
    "id",
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
LINK_COLUMNS = ("sequence", "event_id", "previous_hash", "hash", "key_id", "sealed_at")


# --- Loading ------------------------------------------------------------------------------


def bench_user(email: str, full_name: str, *, roles=(), organizations=(), superuser=False):
    """The staff user, created (with MFA and assignments) the first time only."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    from accounts.models import User
    from accounts.services import organization_assign_staff, user_create

    user = User.objects.filter(email=email).first()
    if user is None:
        user = user_create(actor=None, email=email, full_name=full_name, roles=roles, is_superuser=superuser)
        for organization in organizations:
            organization_assign_staff(actor=None, organization=organization, user=user)
        TOTP.activate(user, generate_totp_secret())  # the portal lets no one in without MFA
    return user


def seed_directory(rng: random.Random):
    """Organisations, technicians, people, an auditor and a superuser; reused when present."""
    from faker import Faker

    from accounts.models import Organization, Person, Role
    from accounts.services import organization_create

    orgs = []
    for name, _ in ORGS:
        slug = "bench-" + name.split()[0].lower()
        organization = Organization.objects.filter(slug=slug).first()
        orgs.append(organization or organization_create(actor=None, name=name, slug=slug))
    fake = Faker("en_US")
    fake.seed_instance(SEED)
    techs = []
    for n in range(TECHNICIANS):
        assigned = {orgs[n % len(orgs)]} | {rng.choice(orgs) for _ in range(rng.randint(0, 2))}
        name = f"{fake.first_name()} {fake.last_name()}"
        techs.append(
            bench_user(
                f"bench-tech-{n:02d}@msp.example",
                name,
                roles=(Role.TECHNICIAN,),
                organizations=sorted(assigned, key=lambda o: o.pk),
            )
        )
    auditor = bench_user(
        AUDITOR_EMAIL, "Bench Auditor", roles=(Role.AUDITOR,), organizations=[orgs[i] for i in AUDITED]
    )
    admin = bench_user(ADMIN_EMAIL, "Bench Admin", superuser=True)
    if not Person.objects.filter(organization__in=orgs).exists():
        weights = [share for _, share in ORGS]
        people = []
        for n in range(PEOPLE):
            org = rng.choices(orgs, weights)[0]
            person = Person(
                organization=org,
                employee_id=f"E{n:07d}",
                full_name=f"{fake.first_name()} {fake.last_name()}",
                email=f"person{n}@{org.slug}.example",
                phone=f"+1202{n:07d}",
            )
            person.search_text = person.build_search_text()
            people.append(person)
        Person.objects.bulk_create(people, batch_size=5000)
    return orgs, techs, auditor, admin


def staff_and_people(orgs, techs) -> tuple[dict[int, list], dict[int, list[tuple[int, str]]]]:
    """Each organisation's technicians and people (read before COPY holds the connection)."""
    from accounts.models import Person
    from accounts.selectors import organization_list_for_user

    people: dict[int, list[tuple[int, str]]] = {}
    for pk, org_id, name in Person.objects.filter(organization__in=orgs).values_list(
        "pk", "organization_id", "full_name"
    ):
        people.setdefault(org_id, []).append((pk, name))
    staff_of: dict[int, list] = {o.pk: [] for o in orgs}
    for tech in techs:
        for org in organization_list_for_user(user=tech):
            if org.pk in staff_of:
                staff_of[org.pk].append(tech)
    return staff_of, people


class _Story:
    """One step of the helpdesk's year: who, where, about whom, and the rows it wrote."""

    def __init__(self, log: _Log, at: datetime, org, tech, person: tuple[int, str]):
        self.log, self.at, self.org, self.tech = log, at, org, tech
        self.person, self.name = person

    def row(self, event_type: str, seconds: float = 0, *, by: str = "tech", org=True, target=("", "", ""), **details):
        """``by``: "tech" (a staff request), "end_user" (the person, on their phone) or "system"."""
        return self.log.row(
            event_type,
            self.at + timedelta(seconds=seconds),
            actor=self.tech if by == "tech" else None,
            kind={"tech": "staff"}.get(by, by),
            org=self.org if org else None,
            target=target,
            details=details,
            request=uuid.uuid4().hex if by != "system" else "",
        )


class _Log:
    """Rows in COPY column order, ids and sequence numbers in time order."""

    def __init__(self, *, first_id: int, first_sequence: int):
        self.row_id, self.sequence, self.previous, self.made = first_id, first_sequence, "0" * 64, 0
        self.links: list[tuple] = []  # LINK_COLUMNS, written after the events
        self.verifications = self.challenges = self.grants = 0

    def row(self, event_type, at, *, actor, kind, org, target, details, request) -> tuple:
        digest = hashlib.sha256(f"{self.row_id}".encode()).hexdigest()  # a stand-in, see above
        labels = {"staff": "System", "end_user": "End user via channel", "system": "System"}
        values = (
            self.row_id,
            event_type,
            kind if actor is not None or kind != "staff" else "system",
            actor.pk if actor is not None else None,
            actor.full_name if actor is not None else labels[kind],
            org.pk if org is not None else None,
            org.name if org is not None else "",
            *target,
            request,
            f"198.51.100.{self.row_id % 250 + 1}" if request else None,
            AGENT if request else "",
            json.dumps(details),
            at,
        )
        sealed_at = at + timedelta(milliseconds=40)
        self.links.append((self.sequence, self.row_id, self.previous, digest, "bench0000000000", sealed_at))
        self.row_id, self.sequence, self.previous, self.made = self.row_id + 1, self.sequence + 1, digest, self.made + 1
        return values


def _sign_in(story: _Story):
    user = ("accounts.user", str(story.tech.pk), story.tech.full_name)
    yield story.row("auth.login_succeeded", org=False, target=user)
    yield story.row("auth.mfa_succeeded", 4, org=False, target=user)


def _directory_change(story: _Story):
    target = ("accounts.person", str(story.person), story.name)
    yield story.row("directory.person_updated", by="system", target=target, fields=["department"])


def _grant(story: _Story, rng: random.Random):
    story.log.grants += 1
    grant = story.log.grants
    role = rng.choice(("Password reset desk", "MFA reset desk", "Account unlock desk"))
    target = ("access.grant", str(grant), f"{role} for {story.tech.full_name} in {story.org.name}")
    yield story.row("access.request_created", target=target, grant=grant, role=role)
    yield story.row("access.request_approved", 300, target=target, grant=grant, role=role)
    yield story.row("access.grant_activated", 400, target=target, grant=grant, role=role)
    yield story.row("access.grant_expired", 4000, by="system", target=target, grant=grant)


def _verification(story: _Story, rng: random.Random):
    """A caller verification: most end in an action, some in a denial, a few in a fraud report."""
    log = story.log
    log.verifications += 1
    log.challenges += 1
    action, method = rng.choice(ACTIONS), rng.choice(METHODS)
    ticket = f"INC-{log.verifications:07d}"
    label = f"{action.replace('_', ' ').capitalize()} for {story.name} ({ticket})"
    target = ("validation.verificationrequest", str(log.verifications), label)
    base = {"verification": log.verifications, "person": story.person}
    asked = {**base, "challenge": log.challenges}
    yield story.row("verification.request_created", target=target, **base, action=action, ticket=ticket)
    yield story.row("verification.challenge_created", 20, target=target, **asked, method=method)
    yield story.row("verification.challenge_sent", 21, by="system", target=target, **asked, method=method)
    for wrong in range(rng.choice((0, 0, 0, 1, 2))):
        yield story.row("verification.challenge_wrong_answer", 40 + wrong, target=target, **asked, method=method)
    outcome = rng.random()
    if outcome < 0.004:
        yield story.row("verification.fraud_reported", 60, by="end_user", target=target, **asked)
        reason = "The person reported they did not request this"
        yield story.row("verification.person_locked", 60, by="system", target=target, **base, reason=reason)
        return
    if outcome < 0.05:
        yield story.row("verification.challenge_denied", 60, by="end_user", target=target, **asked)
        reason = "The person denied the request"
        yield story.row("verification.request_failed", 60, by="system", target=target, **base, reason=reason)
        return
    answered_by = "end_user" if method == "push" else "tech"
    yield story.row("verification.challenge_approved", 70, by=answered_by, target=target, **asked, method=method)
    yield story.row("verification.request_verified", 70, by=answered_by, target=target, **base, methods=[method])
    yield story.row("verification.request_consumed", 120, target=target, **base, action=action)
    person = ("accounts.person", str(story.person), story.name)
    yield story.row(f"action.{action}", 120, target=person, **base, grant=max(log.grants, 1))


def event_rows(total: int, *, log: _Log, orgs, techs, staff_of, people, rng: random.Random):
    """``total`` rows in time (and id) order: verification flows with their actions and
    grants, and the sign-ins and directory changes around them; their links pile up in
    ``log.links``."""
    weights = [share for _, share in ORGS]
    step = SPAN / total * EVENTS_PER_STORY
    now = START
    while log.made < total:
        now += step * rng.expovariate(1.0)
        org = rng.choices(orgs, weights)[0]
        story = _Story(log, now, org, rng.choice(staff_of[org.pk] or techs), rng.choice(people[org.pk]))
        kind = rng.random()
        if kind < 0.12:
            yield from _sign_in(story)
        elif kind < 0.17:
            yield from _directory_change(story)
        elif kind < 0.22:
            yield from _grant(story, rng)
        else:
            yield from _verification(story, rng)


def load_events(total: int, *, rebuild: bool, orgs, techs, rng) -> None:
    from django.db import connection

    from audit.models import SecurityEvent

    existing = SecurityEvent.objects.count()
    if existing >= total and not rebuild:
        print(f"reusing {existing:,} security events")
        return
    tables = ("audit_securityevent", "audit_chainlink", "audit_unsealedevent")
    if rebuild and existing:
        with connection.cursor() as cursor:  # the append-only triggers refuse TRUNCATE: the owner steps around them
            for table in tables:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            cursor.execute(f"TRUNCATE {', '.join(tables)}")
            for table in tables:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM audit_securityevent), "
            "(SELECT COALESCE(MAX(sequence), 0) FROM audit_chainlink)"
        )
        max_id, max_sequence = cursor.fetchone()
    started = time.perf_counter()
    staff_of, people = staff_and_people(orgs, techs)
    log = _Log(first_id=max_id + 1, first_sequence=max_sequence + 1)
    rows = event_rows(
        total - SecurityEvent.objects.count(),
        staff_of=staff_of,
        people=people,
        log=log,
        orgs=orgs,
        techs=techs,
        rng=rng,
    )
    with connection.cursor() as cursor:
        # Loaded already sealed: the sealer's queue trigger is off for the COPY (the owner's right).
        cursor.execute("ALTER TABLE audit_securityevent DISABLE TRIGGER audit_securityevent_queue")
        with cursor.cursor.copy(f"COPY audit_securityevent ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for values in rows:
                copy.write_row(values)
        cursor.execute("ALTER TABLE audit_securityevent ENABLE TRIGGER audit_securityevent_queue")
        with cursor.cursor.copy(f"COPY audit_chainlink ({', '.join(LINK_COLUMNS)}) FROM STDIN") as copy:
            for link in log.links:
                copy.write_row(link)
        cursor.execute("VACUUM ANALYZE audit_chainlink")
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('audit_securityevent', 'id'), MAX(id)) FROM audit_securityevent"
        )
        cursor.execute("VACUUM ANALYZE audit_securityevent")
    print(f"loaded {SecurityEvent.objects.count():,} security events in {time.perf_counter() - started:.0f} s")


def load_logentries(total: int, *, rebuild: bool, techs, rng) -> None:
    """django-auditlog's LogEntry rows, as its signal handlers write them for field changes."""
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    from accounts.models import Person

    existing = LogEntry.objects.count()
    if existing >= total and not rebuild:
        print(f"reusing {existing:,} auditlog entries")
        return
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE auditlog_logentry")
    person_type = ContentType.objects.get_for_model(Person).pk
    people = list(Person.objects.values_list("pk", "full_name")[:PEOPLE])
    columns = (
        "content_type_id",
        "object_pk",
        "object_id",
        "object_repr",
        "action",
        "changes_text",
        "changes",
        "actor_id",
        "remote_addr",
        "timestamp",
        "actor_email",
    )
    started = time.perf_counter()
    step = SPAN / total
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY auditlog_logentry ({', '.join(columns)}) FROM STDIN") as copy:
            for n in range(total):
                pk, name = rng.choice(people)
                tech = rng.choice(techs)
                changes = {
                    "department": ["Finance", "Sales"],
                    "phone": ["+1202555" + f"{n % 10000:04d}", "+12025550100"],
                }
                copy.write_row(
                    (
                        person_type,
                        str(pk),
                        pk,
                        name,
                        1,
                        "",
                        json.dumps(changes),
                        tech.pk,
                        f"198.51.100.{n % 250 + 1}",
                        START + step * n,
                        tech.email,
                    )
                )
        cursor.execute("VACUUM ANALYZE auditlog_logentry")
    print(f"loaded {total:,} auditlog entries in {time.perf_counter() - started:.0f} s")
