"""Gated helpdesk actions from the person page: the action page (what is missing and what
fixes it; the form when nothing is), performing it, and the record of an action performed.

The person and the verification resolve through scoped selectors (another organisation's is a
404). The service decides; a refusal names what is missing and links to its fix.

A temporary password is rendered into the response to the POST that created it, marked
``Cache-Control: no-store``, and exists nowhere else: not in the session, not in a redirect,
not in the database, not in a log.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods

from access import action_selectors as selectors
from access import params
from access.action_forms import HelpdeskActionForm
from access.services import AccessError
from access.services.actions import ActionFailed, ActionOutcome, ActionRefused, helpdesk_action_perform
from access.views._common import staff
from accounts.models import Person, User
from accounts.selectors import person_get_for_user
from validation.models import Action, VerificationRequest
from validation.selectors import verification_scoped_for_user


def _verification(user: User, pk: int | None) -> VerificationRequest | None:
    return verification_scoped_for_user(user=user, pk=pk) if pk else None


@require_http_methods(["GET", "POST"])
@login_required
@never_cache
def action_start(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    user = staff(request)
    person = person_get_for_user(user=user, pk=pk)
    if action not in params.GRANTABLE_ACTIONS:
        raise Http404("No such action")
    form = HelpdeskActionForm(
        request.POST if request.method == "POST" else None, contact_change=action == Action.CONTACT_CHANGE
    )
    refusal: list[selectors.Missing] = []
    failure: ActionFailed | None = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            outcome = helpdesk_action_perform(
                actor=user,
                person=person,
                action=action,
                verification=_verification(user, data["verification"]),
                contact_field=data.get("contact_field", ""),
                new_contact=data.get("new_contact", ""),
                request=request,
            )
        except ActionRefused as exc:
            refusal = exc.missing
        except ActionFailed as exc:
            failure = exc
        except AccessError as exc:
            form.add_error(None, exc.message)
        else:
            return _performed(request, outcome)
    status = 403 if refusal else 502 if failure else 200
    return render(
        request, "access/actions/start.html", _page(user, person, action, form, refusal, failure), status=status
    )


def _page(user: User, person: Person, action: str, form, refusal, failure) -> dict:
    return {
        "person": person,
        "action": action,
        "action_label": Action(action).label,
        # The form posts the newest usable verification (read again at every render).
        "readiness": selectors.action_readiness(technician=user, person=person, action=action),
        "form": form,
        "refusal": refusal,
        "failure": failure,
        "connector": selectors.connector_for(organization=person.organization),
        "config": selectors.directory_config_for(organization=person.organization),
    }


@sensitive_variables("outcome", "response")
def _performed(request: HttpRequest, outcome: ActionOutcome) -> HttpResponse:
    if outcome.temporary_password is None:
        messages.success(
            request, f"{outcome.record.get_action_display()} recorded: reference {outcome.record.reference}."
        )
        return redirect("access:action_detail", pk=outcome.record.pk)
    response = render(
        request,
        "access/actions/detail.html",
        {"done": outcome.record, "temporary_password": outcome.temporary_password, "just_performed": True},
    )
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@login_required
def action_detail(request: HttpRequest, pk: int) -> HttpResponse:
    done = selectors.helpdesk_action_get_for_user(user=staff(request), pk=pk)
    return render(request, "access/actions/detail.html", {"done": done})
