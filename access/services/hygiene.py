"""Access hygiene run by Celery beat: eligibilities past their end date end, and each
organisation's org admins get a daily digest of what happened in the last 24 hours.
(Inactive staff accounts are locked by ``accounts.services.user_lock_inactive``; access
review campaigns are ``access.services.reviews``.)"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Count
from django.template.loader import render_to_string
from django.utils import timezone

from access import params
from access.models import Eligibility, ReviewCampaign, ReviewItem
from access.notifications import portal_link
from access.services._common import iso
from access.services.eligibility import eligibility_close
from accounts.models import Organization
from accounts.selectors import locked_staff_for_organization, org_admins_of_organization
from audit.events import EventType
from audit.models import SecurityEvent
from audit.recorder import security_event_record

DIGEST_PERIOD = timedelta(hours=24)
# What the digest counts from the security event log, by the event code that records it.
DIGEST_EVENTS = {
    "grants_used": EventType.ACCESS_GRANT_ACTIVATED,
    "break_glass": EventType.ACCESS_BREAK_GLASS_ACTIVATED,
    "person_locks": EventType.VERIFICATION_PERSON_LOCKED,
    "fraud_reports": EventType.VERIFICATION_FRAUD_REPORTED,
}


def eligibility_expire(*, eligibility_id: int) -> bool:
    """End one eligibility whose ``valid_until`` has come (``valid_until <= now``: it stopped
    being current at that instant, ``Eligibility.is_current``), like ``eligibility_end`` with
    the system as actor: open requests cancelled, grants of the role there revoked,
    ``access.eligibility_ended`` recorded. Re-checked under the row lock; returns whether it ended."""
    with transaction.atomic():
        now = timezone.now()
        locked = (
            Eligibility.objects.select_for_update(of=("self",))
            .select_related("organization", "role")
            .filter(pk=eligibility_id, ended_at__isnull=True, valid_until__lte=now)
            .first()
        )
        if locked is None:
            return False
        eligibility_close(
            locked,
            actor=None,
            now=now,
            why="Eligibility reached its end date",
            reason="End date reached",
            valid_until=iso(locked.valid_until),
        )
        return True


def eligibility_expire_due() -> int:
    """The beat sweep: end every eligibility past its end date, each in its own transaction."""
    due = Eligibility.objects.filter(ended_at__isnull=True, valid_until__lte=timezone.now()).order_by("valid_until")
    ids = list(due.values_list("pk", flat=True)[: params.SWEEP_BATCH])
    return sum(eligibility_expire(eligibility_id=pk) for pk in ids)


# --- The daily digest to org admins -----------------------------------------------------


def digest_counts(*, organization: Organization, since: datetime, until: datetime) -> dict[str, int]:
    """What the digest reports for ``since <= t < until``: the event counts of DIGEST_EVENTS
    (one grouped query on the event log's organisation index), staff of the organisation
    locked for inactivity, and the review items still pending in its open campaign."""
    rows = (
        SecurityEvent.objects.filter(
            organization_id=organization.pk,
            created_at__gte=since,
            created_at__lt=until,
            event_type__in=list(DIGEST_EVENTS.values()),
        )
        .order_by()
        .values("event_type")
        .annotate(n=Count("id"))
    )
    by_type = {row["event_type"]: row["n"] for row in rows}
    counts = {name: by_type.get(code.value, 0) for name, code in DIGEST_EVENTS.items()}
    counts["staff_locked"] = (
        locked_staff_for_organization(organization=organization)
        .filter(locked_at__gte=since, locked_at__lt=until)
        .count()
    )
    counts["pending_reviews"] = ReviewItem.objects.filter(
        campaign__organization=organization,
        campaign__status=ReviewCampaign.Status.OPEN,
        decision=ReviewItem.Decision.PENDING,
    ).count()
    return counts


def access_digest_send(*, organization_id: int, until: datetime) -> int:
    """Email the digest for the 24 hours before ``until`` to each active org admin assigned
    to the organisation (only them: another organisation's admins never see it; an
    organisation without org admins gets none), one message each, text and HTML. Nothing
    is sent when every count is zero. Records ``access.digest_sent``. Returns messages sent."""
    organization = Organization.objects.filter(pk=organization_id, active=True).first()
    if organization is None:
        return 0
    since = until - DIGEST_PERIOD
    counts = digest_counts(organization=organization, since=since, until=until)
    recipients = [admin for admin in org_admins_of_organization(organization=organization) if admin.email]
    if not recipients or not any(counts.values()):
        return 0
    context = {
        "organization": organization,
        "counts": counts,
        "since": since,
        "until": until,
        "grants_link": portal_link("access:org_grants", organization.slug),
        "reviews_link": portal_link("access:review_list", organization.slug),
        "locked_link": portal_link("access:locked_staff", organization.slug),
        "events_link": portal_link("audit:event_list"),
    }
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(
        render_to_string("access/email/digest_subject.txt", context).split()
    )
    text = render_to_string("access/email/digest.txt", context)
    html = render_to_string("access/email/digest.html", context)
    messages = []
    for admin in recipients:
        message = EmailMultiAlternatives(subject, text, to=[admin.email])
        message.attach_alternative(html, "text/html")
        messages.append(message)
    sent = get_connection().send_messages(messages) or 0
    with transaction.atomic():
        security_event_record(
            event_type=EventType.ACCESS_DIGEST_SENT,
            target=organization,
            organization=organization,
            details={"recipients": len(recipients), "since": iso(since), "until": iso(until), **counts},
        )
    return sent


def access_digest_organizations() -> list[int]:
    """Active organisations, for the beat task to queue one digest each."""
    return list(Organization.objects.filter(active=True).order_by("pk").values_list("pk", flat=True))
