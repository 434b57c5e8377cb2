"""Staff accounts locked for inactivity, per organisation, for its org admins (and
superusers): the list, unlock with a reason (``accounts.services.user_unlock``), or close
for good, with a reason, someone who left (``accounts.services.user_close``).
Another organisation's staff member is a 404; the service checks the actor again and
refuses anyone unlocking their own account."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from access.hygiene_forms import UnlockForm
from access.views._common import form_errors, staff
from access.views.org_admin import org_admin_required
from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.models import Organization


@require_GET
@login_required
@never_cache
@org_admin_required
def locked_staff(request: HttpRequest, organization: Organization) -> HttpResponse:
    context = {
        "organization": organization,
        "locked": account_selectors.locked_staff_for_organization(organization=organization),
        "days": settings.STAFF_INACTIVE_LOCK_DAYS,
        "form": UnlockForm(),
    }
    return render(request, "access/org/locked_staff.html", context)


@require_POST
@login_required
@org_admin_required
def staff_unlock(request: HttpRequest, organization: Organization, pk: int) -> HttpResponse:
    days = settings.STAFF_INACTIVE_LOCK_DAYS
    return _lock_change(
        request,
        organization,
        pk,
        account_services.user_unlock,
        f"{{}} is unlocked and was emailed; they must sign in within {days} days.",
    )


@require_POST
@login_required
@org_admin_required
def staff_close(request: HttpRequest, organization: Organization, pk: int) -> HttpResponse:
    return _lock_change(
        request,
        organization,
        pk,
        account_services.user_close,
        "{}'s account is closed: nobody can unlock it; only a superuser can reopen it.",
    )


def _lock_change(request: HttpRequest, organization: Organization, pk: int, service, done: str) -> HttpResponse:
    """Unlock or close one of the organisation's locked staff with the form's reason; the
    service decides who may and says why not. ``done`` is the success message (``{}``: whom)."""
    user = account_selectors.locked_staff_get_for_organization(organization=organization, pk=pk)
    form = UnlockForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect("access:locked_staff", slug=organization.slug)
    try:
        service(actor=staff(request), user=user, reason=form.cleaned_data["reason"], request=request)
    except account_services.UnlockError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done.format(user))
    return redirect("access:locked_staff", slug=organization.slug)
