"""Reads for access review campaigns, always within one organisation (the views resolve the
organisation first, so another organisation's campaign or item is a 404)."""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.http import Http404

from access.review_models import ReviewCampaign, ReviewItem
from accounts.models import Organization


def review_campaign_list_for_organization(*, organization: Organization) -> QuerySet[ReviewCampaign]:
    return ReviewCampaign.objects.filter(organization=organization).select_related("started_by")


def review_campaign_get_for_organization(*, organization: Organization, pk: int) -> ReviewCampaign:
    try:
        return review_campaign_list_for_organization(organization=organization).get(pk=pk)
    except ReviewCampaign.DoesNotExist:
        raise Http404("No such access review") from None


def review_item_get_for_campaign(*, campaign: ReviewCampaign, pk: int) -> ReviewItem:
    try:
        return ReviewItem.objects.select_related("campaign__organization", "eligibility").get(campaign=campaign, pk=pk)
    except ReviewItem.DoesNotExist:
        raise Http404("No such review item") from None


def review_item_list(*, campaign: ReviewCampaign, pending_only: bool = False) -> QuerySet[ReviewItem]:
    items = ReviewItem.objects.filter(campaign=campaign).select_related(
        "technician", "reviewer", "eligibility__role", "eligibility__created_by"
    )
    if pending_only:
        items = items.filter(decision=ReviewItem.Decision.PENDING)
    return items.order_by("technician__full_name", "technician__email", "eligibility__role__name", "pk")


def review_progress(*, campaign: ReviewCampaign) -> dict[str, int]:
    """Counts per decision (one grouped query), the total, how many are decided and the percentage."""
    rows = ReviewItem.objects.filter(campaign=campaign).order_by().values("decision").annotate(n=Count("pk"))
    counts = {decision.value: 0 for decision in ReviewItem.Decision}
    counts.update({row["decision"]: row["n"] for row in rows})
    total = sum(counts.values())
    decided = total - counts[ReviewItem.Decision.PENDING]
    return {**counts, "total": total, "decided": decided, "percent": round(100 * decided / total) if total else 100}
