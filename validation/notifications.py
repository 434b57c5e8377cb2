"""Emails of caller verification to staff: the lock alert to the organisation's admins (a
fraud report, or the consecutive-failure cap). Bodies are templates under
``templates/validation/email/``."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import Organization, Role, User
from accounts.selectors import staff_for_organization
from validation.models import VerificationRequest


def org_admin_list_for(*, organization: Organization) -> QuerySet[User]:
    """The organisation's assigned, active org admins; when it has none, every active
    superuser, so an alert always reaches someone."""
    admins = staff_for_organization(organization=organization).filter(is_active=True, groups__name=Role.ORG_ADMIN)
    if admins.exists():
        return admins.distinct()
    return User.objects.filter(is_active=True, is_superuser=True)


LOCK_CAUSES = ("fraud", "failures")  # the templates' names: lock_alert_<cause>.txt


def lock_alert_send(*, verification_id: int, cause: str) -> int:
    """To every org admin at once, when verification locked for a person: who, why (a fraud
    report, or too many failed attempts), about which request and technician, and where to
    review and lift the lock. One message per admin (no one sees the others)."""
    if cause not in LOCK_CAUSES:
        raise ValueError(f"Unknown lock cause: {cause}")
    verification = (
        VerificationRequest.objects.select_related("person", "organization", "technician")
        .filter(pk=verification_id)
        .first()
    )
    if verification is None:
        return 0
    base = str(settings.PUBLIC_BASE_URL).rstrip("/")
    context = {
        "verification": verification,
        "person_link": base + reverse("validation:start", args=[verification.person_id]),
        "verification_link": base + reverse("validation:detail", args=[verification.pk]),
    }
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(
        render_to_string(f"validation/email/lock_alert_{cause}_subject.txt", context).split()
    )
    body = render_to_string(f"validation/email/lock_alert_{cause}.txt", context)
    recipients = org_admin_list_for(organization=verification.organization)
    messages = [EmailMessage(subject, body, to=[user.email]) for user in recipients if user.email]
    if not messages:
        return 0
    return get_connection().send_messages(messages) or 0
