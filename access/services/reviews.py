"""Access review campaigns. Every current eligibility of an organisation is put in front of
its reviewers (the organisation's org admins, and superusers: those who grant eligibility
re-certify it), who re-certify or remove each one before the deadline. Nobody reviews their
own eligibility (refused here and recorded, and refused by the database). At the deadline
every item still pending lapses and its eligibility ends, like ``eligibility_end``.

Locks are always taken in the order campaign, eligibility, review item, so a decision, the
deadline and an org admin ending the eligibility meanwhile never deadlock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Min, Q
from django.http import HttpRequest
from django.utils import timezone

from access.models import Eligibility, ReviewCampaign, ReviewItem
from access.selectors import may_administer_access
from access.services._common import AccessError, iso, record
from access.services.eligibility import eligibility_close
from accounts.models import Organization, User
from audit.events import EventType

DEADLINE_CAP = timedelta(days=90)
REASON_MAX = 200
REMOVAL_REASON_MIN = 5
DECISIONS = (ReviewItem.Decision.RECERTIFIED, ReviewItem.Decision.REMOVED)


class SelfReviewError(AccessError):
    """The eligible technician tried to decide on their own eligibility."""


def _in_scope(organization: Organization, now: datetime):
    return Eligibility.objects.filter(organization=organization, ended_at__isnull=True).filter(
        Q(valid_until__isnull=True) | Q(valid_until__gt=now)
    )


@transaction.atomic
def review_campaign_start(
    *,
    actor: User | None,
    organization: Organization,
    deadline: datetime | None = None,
    request: HttpRequest | None = None,
) -> ReviewCampaign:
    """Open a campaign over every eligibility of ``organization`` current now. ``actor`` is
    an org admin of the organisation (or a superuser), or ``None`` for the quarterly beat
    task. The deadline defaults to ACCESS_REVIEW_DEADLINE_DAYS from now, at most 90 days.
    One open campaign per organisation; nothing to review is refused."""
    now = timezone.now()
    if actor is not None and not may_administer_access(actor, organization):
        raise AccessError("Only org admins of this organisation start its access reviews.")
    deadline = deadline or now + timedelta(days=settings.ACCESS_REVIEW_DEADLINE_DAYS)
    if not now < deadline <= now + DEADLINE_CAP:
        raise AccessError("The deadline must be in the future and at most 90 days away.")
    eligibilities = list(_in_scope(organization, now).order_by("pk").values_list("pk", "technician_id"))
    if not eligibilities:
        raise AccessError(f"Nobody is eligible for any role in {organization}: there is nothing to review.")
    try:
        with transaction.atomic():
            campaign = ReviewCampaign.objects.create(
                organization=organization, started_by=actor, started_at=now, deadline=deadline
            )
    except IntegrityError:
        raise AccessError(f"An access review of {organization} is already open.") from None
    ReviewItem.objects.bulk_create(
        ReviewItem(campaign=campaign, eligibility_id=pk, technician_id=technician_id)
        for pk, technician_id in eligibilities
    )
    record(
        EventType.ACCESS_REVIEW_STARTED,
        actor=actor,
        organization=organization,
        target=campaign,
        request=request,
        items=len(eligibilities),
        deadline=iso(deadline),
        scheduled=actor is None,
    )
    return campaign


def _refuse_self_review(actor: User, item: ReviewItem, decision: str, request) -> None:
    """Recorded in its own transaction so the refusal stays in the log, then raised."""
    with transaction.atomic():
        record(
            EventType.ACCESS_REVIEW_SELF_REFUSED,
            actor=actor,
            organization=item.campaign.organization,
            target=item.eligibility,
            request=request,
            campaign=item.campaign_id,
            item=item.pk,
            decision=decision,
        )
    raise SelfReviewError("You cannot review your own eligibility; another org admin must.")


def _clean_decision(decision: str, reason: str) -> tuple[str, str]:
    if decision not in DECISIONS:
        raise AccessError("Choose re-certify or remove.")
    reason = " ".join((reason or "").split())
    if len(reason) > REASON_MAX:
        raise AccessError(f"Keep the reason to {REASON_MAX} characters.")
    if decision == ReviewItem.Decision.REMOVED and len(reason) < REMOVAL_REASON_MIN:
        raise AccessError("Give the reason for removing this eligibility.")
    return decision, reason


def review_item_decide(
    *, actor: User, item: ReviewItem, decision: str, reason: str = "", request: HttpRequest | None = None
) -> ReviewItem:
    """Re-certify (the eligibility stays) or remove (it ends now: open requests cancelled,
    grants of the role there revoked) one pending item, before the deadline. ``actor`` must
    administer access of the campaign's organisation and not be the item's technician.
    A removal needs a reason. Records ``access.review_item_decided``."""
    decision, reason = _clean_decision(decision, reason)
    item = ReviewItem.objects.select_related("campaign__organization", "eligibility").get(pk=item.pk)
    if actor.pk == item.technician_id:
        _refuse_self_review(actor, item, decision, request)
    with transaction.atomic():
        now = timezone.now()
        campaign = ReviewCampaign.objects.select_for_update().select_related("organization").get(pk=item.campaign_id)
        if not may_administer_access(actor, campaign.organization):
            raise AccessError("Only org admins of this organisation review its access.")
        if not campaign.is_open or campaign.deadline <= now:
            raise AccessError("This access review is closed: its deadline has passed.")
        eligibility = (
            Eligibility.objects.select_for_update(of=("self",))
            .select_related("organization", "role")
            .get(pk=item.eligibility_id)
        )
        locked = ReviewItem.objects.select_for_update().get(pk=item.pk)
        if not locked.is_pending:
            raise AccessError(f"This item was already decided ({locked.get_decision_display().lower()}).")
        locked.decision, locked.reason = decision, reason
        locked.reviewer, locked.decided_at = actor, now
        locked.save(update_fields=["decision", "reason", "reviewer", "decided_at"])
        if decision == ReviewItem.Decision.REMOVED and eligibility.ended_at is None:
            eligibility_close(
                eligibility,
                actor=actor,
                now=now,
                why=f"Removed in the access review by {actor}: {reason}",
                reason=reason,
                request=request,
                review=campaign.pk,
            )
        record(
            EventType.ACCESS_REVIEW_ITEM_DECIDED,
            actor=actor,
            organization=campaign.organization,
            target=eligibility,
            request=request,
            campaign=campaign.pk,
            item=locked.pk,
            decision=decision,
            technician=locked.technician_id,
            role=eligibility.role.name,
            reason=reason,
        )
    return locked


def review_campaign_close(*, campaign_id: int) -> bool:
    """At the deadline (``deadline <= now``): every item still pending lapses and its
    eligibility ends (``access.eligibility_ended`` with the campaign), re-certified ones stay;
    the campaign closes and ``access.review_closed`` records the counts. One transaction,
    re-checked under the campaign's row lock. Returns whether it closed."""
    with transaction.atomic():
        now = timezone.now()
        campaign = (
            ReviewCampaign.objects.select_for_update()
            .select_related("organization")
            .filter(pk=campaign_id, status=ReviewCampaign.Status.OPEN, deadline__lte=now)
            .first()
        )
        if campaign is None:
            return False
        pending = campaign.items.filter(decision=ReviewItem.Decision.PENDING).order_by("eligibility_id")
        lapsed = []
        for eligibility_id, item_id in list(pending.values_list("eligibility_id", "pk")):
            eligibility = (
                Eligibility.objects.select_for_update(of=("self",))
                .select_related("organization", "role")
                .get(pk=eligibility_id)
            )
            ReviewItem.objects.filter(pk=item_id).update(
                decision=ReviewItem.Decision.LAPSED, decided_at=now, reason="Not re-certified by the deadline"
            )
            if eligibility.ended_at is None:
                eligibility_close(
                    eligibility,
                    actor=None,
                    now=now,
                    why="Not re-certified in the access review by its deadline",
                    reason="Not re-certified by the deadline",
                    review=campaign.pk,
                )
            lapsed.append(eligibility_id)
        campaign.status, campaign.closed_at = ReviewCampaign.Status.CLOSED, now
        campaign.save(update_fields=["status", "closed_at"])
        counts = dict(campaign.items.order_by().values_list("decision").annotate(n=Count("pk")))
        record(
            EventType.ACCESS_REVIEW_CLOSED,
            organization=campaign.organization,
            target=campaign,
            deadline=iso(campaign.deadline),
            lapsed=lapsed,
            **{f"{decision}_count": n for decision, n in counts.items()},
        )
        return True


def review_campaigns_close_due() -> int:
    """Beat: close every open campaign whose deadline has come."""
    due = ReviewCampaign.objects.filter(status=ReviewCampaign.Status.OPEN, deadline__lte=timezone.now())
    ids = list(due.order_by("deadline").values_list("pk", flat=True))
    return sum(review_campaign_close(campaign_id=pk) for pk in ids)


def review_campaigns_start_due() -> int:
    """Beat (daily): start a campaign for each active organisation whose last one started
    ACCESS_REVIEW_INTERVAL_DAYS ago or more (or, never reviewed, whose oldest current
    eligibility is that old), none being open. 0 days turns this off."""
    if settings.ACCESS_REVIEW_INTERVAL_DAYS <= 0:
        return 0
    now = timezone.now()
    horizon = now - timedelta(days=settings.ACCESS_REVIEW_INTERVAL_DAYS)
    started = 0
    for organization in Organization.objects.filter(active=True).order_by("pk"):
        last = ReviewCampaign.objects.filter(organization=organization).order_by("-started_at").first()
        if last is not None and (last.is_open or last.started_at > horizon):
            continue
        if last is None:
            oldest = _in_scope(organization, now).aggregate(oldest=Min("created_at"))["oldest"]
            if oldest is None or oldest > horizon:
                continue
        try:
            review_campaign_start(actor=None, organization=organization)
        except AccessError:
            continue  # nothing to review, or opened meanwhile by an org admin
        started += 1
    return started
