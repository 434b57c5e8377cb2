"""Idempotent demo data for `make run`: two client organisations, their directories,
and one staff user per role. Development mode only."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass

from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from accounts.imports import people_import
from accounts.models import Organization, Role, User
from accounts.services import organization_assign_staff, organization_create, user_create

DEMO_PASSWORD = "helpdesk-demo-2026"  # noqa: S105  (development mode only; printed by make run)
PEOPLE_PER_ORGANIZATION = 300

_FIRST = [
    "Ada",
    "Alan",
    "Amara",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farah",
    "Grace",
    "Hana",
    "Ivan",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Uma",
    "Victor",
    "Wen",
    "Yusuf",
    "Zoe",
]
_LAST = [
    "Adams",
    "Baker",
    "Chen",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jones",
    "Khan",
    "Lopez",
    "Morgan",
    "Nguyen",
    "Okafor",
    "Patel",
    "Quinn",
    "Rossi",
    "Silva",
    "Taylor",
    "Umar",
    "Vega",
    "Walsh",
    "Xu",
    "Young",
    "Zimmer",
]
_DEPARTMENTS = ["Finance", "Sales", "Engineering", "Operations", "People", "Legal", "IT"]


@dataclass(frozen=True)
class DemoStaff:
    email: str
    full_name: str
    roles: tuple[Role, ...] = ()
    superuser: bool = False
    is_staff: bool = False
    enrol_mfa: bool = True
    organizations: tuple[str, ...] = ("acme", "globex")


DEMO_ORGANIZATIONS = (("Acme Manufacturing", "acme", "Europe/London"), ("Globex Retail", "globex", "America/New_York"))
DEMO_STAFF = (
    DemoStaff("tech@demo.example", "Terry Technician", (Role.TECHNICIAN,)),
    DemoStaff("approver@demo.example", "Avery Approver", (Role.APPROVER,)),
    DemoStaff("auditor@demo.example", "Audrey Auditor", (Role.AUDITOR,)),
    DemoStaff("orgadmin@demo.example", "Orla Org-Admin", (Role.ORG_ADMIN,), is_staff=True),
    DemoStaff("admin@demo.example", "Sam Superuser", superuser=True, organizations=()),
    DemoStaff(
        "newtech@demo.example", "Nina New-Technician", (Role.TECHNICIAN,), enrol_mfa=False, organizations=("acme",)
    ),
)


def demo_people_csv(slug: str, count: int = PEOPLE_PER_ORGANIZATION) -> str:
    """A deterministic directory: a CEO, department heads, and staff reporting to them."""
    rng = random.Random(slug)
    base = 1000 if slug == "acme" else 5000
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["employee_id", "full_name", "email", "phone", "department", "manager_employee_id", "privileged"])
    heads: dict[str, str] = {}
    for i in range(count):
        employee_id = f"{slug[:3].upper()}{i + 1:05d}"
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        department = _DEPARTMENTS[i % len(_DEPARTMENTS)] if i else "Executive"
        if i == 0:
            manager = ""
        elif department not in heads:
            heads[department] = employee_id
            manager = f"{slug[:3].upper()}00001"
        else:
            manager = heads[department]
        privileged = i == 0 or department == "IT" and i % 5 == 0
        email = f"{first}.{last}.{i + 1}@{slug}.example".lower()
        writer.writerow(
            [employee_id, f"{first} {last}", email, f"+1202555{base + i:04d}", department, manager, privileged]
        )
    return out.getvalue()


def _ensure_staff(spec: DemoStaff, organizations: dict[str, Organization]) -> User:
    user = User.objects.filter(email=spec.email).first()
    if user is None:
        user = user_create(
            actor=None,
            email=spec.email,
            full_name=spec.full_name,
            password=DEMO_PASSWORD,
            roles=spec.roles,
            is_staff=spec.is_staff,
            is_superuser=spec.superuser,
        )
    for slug in spec.organizations:
        if not user.has_perm("accounts.work_on_organization", organizations[slug]):
            organization_assign_staff(actor=None, organization=organizations[slug], user=user)
    totp = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if spec.enrol_mfa and totp is None:
        TOTP.activate(user, generate_totp_secret())
    return user


@transaction.atomic
def demo_seed() -> list[User]:
    if not settings.DEBUG:
        raise ImproperlyConfigured("DEBUG: demo data is for development mode only")
    organizations = {}
    for name, slug, tz in DEMO_ORGANIZATIONS:
        org = Organization.objects.filter(slug=slug).first()
        organizations[slug] = org or organization_create(actor=None, name=name, slug=slug, time_zone=tz)
        result = people_import(
            actor=None, organization=organizations[slug], csv_text=demo_people_csv(slug), dry_run=False
        )
        if result.errors:
            raise RuntimeError(f"demo directory for {slug} is invalid: {result.errors[:3]}")
    return [_ensure_staff(spec, organizations) for spec in DEMO_STAFF]


def demo_totp(user: User) -> tuple[str, str] | None:
    """(current code, otpauth URI) for a demo user's authenticator, or None if not enrolled."""
    from allauth.mfa.adapter import get_adapter
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value, yield_hotp_counters_from_time
    from allauth.mfa.utils import decrypt

    if not settings.DEBUG:
        raise ImproperlyConfigured("DEBUG: demo TOTP codes are for development mode only")
    totp = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if totp is None:
        return None
    secret = decrypt(totp.data["secret"])
    counter = next(iter(yield_hotp_counters_from_time()))
    return format_hotp_value(hotp_value(secret, counter)), get_adapter().build_totp_url(user, secret)
