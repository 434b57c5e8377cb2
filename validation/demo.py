"""Demo data for `make run`: a few people in each demo organisation have an enrolled TOTP
authenticator, so the demo can show an MFA reset (push + authenticator) without a phone,
and the demo org admin allows SMS reply and email code for "Other" requests. Development
mode only."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from accounts.models import Organization, Person, User
from accounts.selectors import organization_list_for_user
from validation import crypto
from validation.channels.totp import STEP
from validation.models import Action, Method, PersonAuthenticator

DEMO_ENROLLED = ("ACM00001", "ACM00002", "ACM00003", "GLO00001", "GLO00002", "GLO00003")
DEMO_ORG_ADMIN = "orgadmin@demo.example"


def _require_development() -> None:
    if not settings.DEBUG:
        raise ImproperlyConfigured("DEBUG: demo authenticators are for development mode only")


@transaction.atomic
def demo_authenticators_seed() -> list[Person]:
    _require_development()
    people = list(Person.objects.filter(employee_id__in=DEMO_ENROLLED).select_related("organization"))
    for person in people:
        if not PersonAuthenticator.objects.filter(person=person, confirmed_at__isnull=False).exists():
            PersonAuthenticator.objects.update_or_create(
                person=person,
                defaults={"sealed_key": crypto.seal(secrets.token_bytes(20)), "confirmed_at": timezone.now()},
            )
    return people


def demo_person_code(person: Person) -> str | None:
    """The code the person's authenticator shows now, or None when they have none."""
    from django_otp.oath import TOTP

    _require_development()
    authenticator = PersonAuthenticator.objects.filter(person=person, confirmed_at__isnull=False).first()
    if authenticator is None:
        return None
    totp = TOTP(crypto.unseal(authenticator.sealed_key), step=STEP, digits=6)
    totp.time = timezone.now().timestamp()
    return f"{totp.token():06d}"


def demo_policies_seed() -> list[Organization]:
    """The demo org admin adds SMS reply and email code to the "Other" policy of their
    organisations, through the policy service (recorded like any edit). Idempotent."""
    from validation.services import policy_for, policy_update

    _require_development()
    admin = User.objects.filter(email=DEMO_ORG_ADMIN).first()
    if admin is None:
        return []
    organizations = list(organization_list_for_user(user=admin))
    for organization in organizations:
        policy = policy_for(organization=organization, action=Action.OTHER)
        methods = list(dict.fromkeys([*policy.allowed_methods, Method.SMS_REPLY, Method.EMAIL_CODE]))
        policy_update(actor=admin, policy=policy, data={"allowed_methods": methods})
    return organizations
