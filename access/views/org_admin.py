"""Org admins, per organisation: the roles (read; superusers define them in the admin),
who is eligible for which role (make eligible, end), and the grants in force or scheduled
(revoke with a reason) with the break-glass uses waiting for review.

Another organisation is a 404 (``organization_get_for_user``); staff assigned to the
organisation who are not its org admins get a 403 page. The services check again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from access import selectors, services
from access.forms import EligibilityCreateForm, OptionalReasonForm
from access.views._common import form_errors, staff
from accounts.models import Organization
from accounts.selectors import organization_get_for_user


def org_admin_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Resolve ``slug`` to an organisation the user works on (else 404) and let only its org
    admins (and superusers) in (else 403); the view gets the organisation instead of the slug."""

    @wraps(view)
    def wrapper(request: HttpRequest, slug: str, *args, **kwargs) -> HttpResponse:
        organization = organization_get_for_user(user=staff(request), slug=slug)
        if not selectors.may_administer_access(staff(request), organization):
            return render(request, "access/org/forbidden.html", {"organization": organization}, status=403)
        return view(request, organization, *args, **kwargs)

    return wrapper


@require_GET
@login_required
@org_admin_required
def role_list(request: HttpRequest, organization: Organization) -> HttpResponse:
    roles = selectors.role_list_for_organization(organization=organization)
    return render(request, "access/org/roles.html", {"organization": organization, "roles": roles})


@require_http_methods(["GET", "POST"])
@login_required
@org_admin_required
def eligibility_list(request: HttpRequest, organization: Organization) -> HttpResponse:
    user = staff(request)
    form = EligibilityCreateForm(
        request.POST if request.method == "POST" else None,
        technicians=selectors.technician_list_for_organization(organization=organization),
    )
    if form.is_bound and form.is_valid():
        try:
            eligibility = services.eligibility_create(
                actor=user,
                technician=form.cleaned_data["technician"],
                role=form.cleaned_data["role"],
                organization=organization,
                valid_until=form.cleaned_data["valid_until"],
                request=request,
            )
        except services.AccessError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"{eligibility.technician} may now request {eligibility.role}.")
            return redirect("access:eligibility_list", slug=organization.slug)
    context = {
        "organization": organization,
        "form": form,
        "eligibilities": selectors.eligibility_list_for_organization(organization=organization),
    }
    return render(request, "access/org/eligibilities.html", context)


@require_POST
@login_required
@org_admin_required
def eligibility_end(request: HttpRequest, organization: Organization, pk: int) -> HttpResponse:
    eligibility = selectors.eligibility_get_for_organization(organization=organization, pk=pk)
    form = OptionalReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect("access:eligibility_list", slug=organization.slug)
    try:
        services.eligibility_end(
            actor=staff(request), eligibility=eligibility, reason=form.cleaned_data["reason"], request=request
        )
    except services.AccessError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"{eligibility.technician} is no longer eligible for {eligibility.role}; "
            "their open requests were cancelled and their grants of it revoked.",
        )
    return redirect("access:eligibility_list", slug=organization.slug)


@require_GET
@login_required
@never_cache
@org_admin_required
def org_grants(request: HttpRequest, organization: Organization) -> HttpResponse:
    context = {
        "organization": organization,
        "grants": selectors.grant_list_current_for_organization(organization=organization),
        "reviews": selectors.break_glass_reviews_pending(organization=organization),
    }
    return render(request, "access/org/grants.html", context)
