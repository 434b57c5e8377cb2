"""Access review campaigns, per organisation, for its org admins (and superusers): the list
with a "start a review" form, and the campaign page with its progress and the items to
re-certify or remove. Another organisation's campaign is a 404; staff of the organisation
who are not its org admins get the 403 page. The services check everything again."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from access import review_selectors
from access.hygiene_forms import ReviewDecisionForm, ReviewStartForm
from access.review_models import ReviewItem
from access.services import AccessError, reviews
from access.views._common import form_errors, staff
from access.views.org_admin import org_admin_required
from accounts.models import Organization


@require_GET
@login_required
@never_cache
@org_admin_required
def review_list(request: HttpRequest, organization: Organization) -> HttpResponse:
    campaigns = list(review_selectors.review_campaign_list_for_organization(organization=organization)[:50])
    progress = {c.pk: review_selectors.review_progress(campaign=c) for c in campaigns[:10]}
    context = {
        "organization": organization,
        "campaigns": [(c, progress.get(c.pk)) for c in campaigns],
        "form": ReviewStartForm(),
    }
    return render(request, "access/reviews/list.html", context)


@require_POST
@login_required
@org_admin_required
def review_start(request: HttpRequest, organization: Organization) -> HttpResponse:
    form = ReviewStartForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect("access:review_list", slug=organization.slug)
    try:
        campaign = reviews.review_campaign_start(
            actor=staff(request), organization=organization, deadline=form.cleaned_data["deadline"], request=request
        )
    except AccessError as exc:
        messages.error(request, exc.message)
        return redirect("access:review_list", slug=organization.slug)
    messages.success(request, f"Access review started: {campaign.items.count()} eligibilities to review.")
    return redirect("access:review_detail", slug=organization.slug, pk=campaign.pk)


@require_GET
@login_required
@never_cache
@org_admin_required
def review_detail(request: HttpRequest, organization: Organization, pk: int) -> HttpResponse:
    campaign = review_selectors.review_campaign_get_for_organization(organization=organization, pk=pk)
    pending_only = request.GET.get("show") == "pending"
    context = {
        "organization": organization,
        "campaign": campaign,
        "progress": review_selectors.review_progress(campaign=campaign),
        "items": review_selectors.review_item_list(campaign=campaign, pending_only=pending_only),
        "pending_only": pending_only,
        "recertify": ReviewItem.Decision.RECERTIFIED.value,
        "remove": ReviewItem.Decision.REMOVED.value,
    }
    return render(request, "access/reviews/detail.html", context)


@require_POST
@login_required
@org_admin_required
def review_item_decide(request: HttpRequest, organization: Organization, pk: int, item_pk: int) -> HttpResponse:
    campaign = review_selectors.review_campaign_get_for_organization(organization=organization, pk=pk)
    item = review_selectors.review_item_get_for_campaign(campaign=campaign, pk=item_pk)
    back = reverse("access:review_detail", args=[organization.slug, campaign.pk])
    if request.POST.get("show") == "pending":
        back += "?show=pending"
    form = ReviewDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect(back)
    try:
        decided = reviews.review_item_decide(
            actor=staff(request),
            item=item,
            decision=form.cleaned_data["decision"],
            reason=form.cleaned_data["reason"],
            request=request,
        )
    except AccessError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{decided.technician}: {decided.get_decision_display().lower()}.")
    return redirect(back)
