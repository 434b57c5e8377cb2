"""The technician's side of caller verification: start, watch live, challenge, cancel.

Every object URL resolves through ``validation.selectors`` (another organisation's person
or request is a 404). Colleagues in the organisation may watch a request; only the
technician who started it may act on it, which the services enforce and these views report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import User
from accounts.selectors import person_get_for_user
from validation import selectors, services
from validation.forms import ChallengeSendForm, CodeForm, VerificationStartForm
from validation.models import VerificationRequest
from validation.services import lockout

LIST_PAGE_SIZE = 25
FRAGMENT_HEADER = "X-Portal-Fragment"
STATUS_TEMPLATE = "validation/technician/_status.html"  # templates/jinja2/


def _form_errors(form) -> str:
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


@require_http_methods(["GET", "POST"])
@login_required
def verification_start(request: HttpRequest, pk: int) -> HttpResponse:
    person = person_get_for_user(user=cast(User, request.user), pk=pk)
    # ?action=<action> pre-selects what the caller asks for (the links of a refused gated action).
    form = VerificationStartForm(
        request.POST if request.method == "POST" else None, initial={"action": request.GET.get("action", "")[:20]}
    )
    if form.is_bound and form.is_valid():
        try:
            verification = services.verification_request_create(
                actor=cast(User, request.user),
                person=person,
                action=form.cleaned_data["action"],
                ticket_reference=form.cleaned_data["ticket_reference"],
                request=request,
            )
        except services.VerificationError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("validation:detail", pk=verification.pk)
    options = selectors.method_options_for_person(person=person)
    context = {
        "person": person,
        "email_masked": selectors.email_masked(person.email),
        "form": form,
        "options": options,
        "requirements": selectors.action_requirements_for_person(person=person, options=options),
        "lock_reason": selectors.person_lock_reason(person),
        "lift_refusal": lockout.lift_refusal_reason(user=cast(User, request.user), person=person),
        "enrolment_reason": selectors.person_can_receive_enrolment(person),
        "authenticator": getattr(person, "authenticator", None),
    }
    return render(request, "validation/technician/start.html", context)


@require_POST
@login_required
def enrollment_start(request: HttpRequest, pk: int) -> HttpResponse:
    person = person_get_for_user(user=cast(User, request.user), pk=pk)
    try:
        services.enrollment_start(actor=cast(User, request.user), person=person, request=request)
    except services.VerificationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"An enrolment link is on its way to {person.masked_phone}. It works once and expires soon."
        )
    return redirect("validation:start", pk=person.pk)


@require_GET
@login_required
def verification_list(request: HttpRequest) -> HttpResponse:
    verifications = selectors.verification_list_for_technician(technician=cast(User, request.user))
    page = Paginator(verifications, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "validation/technician/list.html", {"page": page})


@require_GET
@login_required
@never_cache
def verification_detail(request: HttpRequest, pk: int) -> HttpResponse:
    verification, status_html = _live_part(request, pk)
    context = {"verification": verification, "status_html": status_html}
    return render(request, "validation/technician/detail.html", context)


@require_GET
@login_required
@never_cache
def verification_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the detail page for htmx; 204 (htmx keeps what it has) when the
    version the client sends is still current."""
    user = cast(User, request.user)
    if request.GET.get("version", "") == str(selectors.verification_version_for_user(user=user, pk=pk)):
        return HttpResponse(status=204)
    return _status_fragment(request, pk)


def _status_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    response = HttpResponse(_live_part(request, pk)[1])
    response[FRAGMENT_HEADER] = "verification-status"  # the page reloads on anything else (a sign-in page)
    return response


def _live_part(request: HttpRequest, pk: int) -> tuple[VerificationRequest, SafeString]:
    """The request (a 404 out of the user's scope) and the live part of its page, through
    Jinja2 (config/jinja2.py: the template that every send, answer and changed poll
    renders), which escapes what it writes as Django does."""
    user = cast(User, request.user)
    verification = selectors.verification_get_for_user(user=user, pk=pk)
    context = {
        "status": selectors.verification_status(verification=verification, user=user),
        "verification": verification,
    }
    html = render_to_string(STATUS_TEMPLATE, context, request, using="jinja2")
    return verification, mark_safe(html)  # noqa: S308 - escaped by Jinja2


def _after_action(request: HttpRequest, pk: int) -> HttpResponse:
    """Back to the page; with htmx, just the live part (with the action's message), so the
    technician's page never reloads. Without JavaScript the forms post and redirect."""
    if request.headers.get("HX-Request") == "true":
        return _status_fragment(request, pk)
    return redirect("validation:detail", pk=pk)


@require_POST
@login_required
def challenge_send(request: HttpRequest, pk: int) -> HttpResponse:
    verification = selectors.verification_scoped_for_user(user=cast(User, request.user), pk=pk)
    form = ChallengeSendForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a method that sends a message to the person.")
        return _after_action(request, pk)
    try:
        services.challenge_start(
            actor=cast(User, request.user),
            verification=verification,
            method=form.cleaned_data["method"],
            request=request,
        )
    except services.VerificationError as exc:
        messages.error(request, exc.message)
    return _after_action(request, pk)


@require_POST
@login_required
def code_check(request: HttpRequest, pk: int, challenge_pk: int) -> HttpResponse:
    challenge = selectors.challenge_scoped_for_user(user=cast(User, request.user), pk=pk, challenge_pk=challenge_pk)
    return _check_code(
        request,
        pk,
        lambda code: services.sms_code_check(
            actor=cast(User, request.user), challenge=challenge, code=code, request=request
        ),
    )


@require_POST
@login_required
def totp_check(request: HttpRequest, pk: int) -> HttpResponse:
    verification = selectors.verification_scoped_for_user(user=cast(User, request.user), pk=pk)
    return _check_code(
        request,
        pk,
        lambda code: services.totp_check(
            actor=cast(User, request.user), verification=verification, code=code, request=request
        ),
    )


def _check_code(request: HttpRequest, pk: int, check: Callable[[str], bool]) -> HttpResponse:
    """A code the technician typed: a malformed one changes nothing; the service counts the rest."""
    form = CodeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
    else:
        try:
            right = check(form.cleaned_data["code"])
        except services.VerificationError as exc:
            messages.error(request, exc.message)
        else:
            _report_answer(request, right)
    return _after_action(request, pk)


def _report_answer(request: HttpRequest, right: bool) -> None:
    if right:
        messages.success(request, "Code accepted.")
    else:
        messages.error(request, "Wrong code. The attempt was counted.")


@require_POST
@login_required
def verification_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    verification = selectors.verification_scoped_for_user(user=cast(User, request.user), pk=pk)
    try:
        services.verification_cancel(actor=cast(User, request.user), verification=verification, request=request)
    except services.VerificationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Verification cancelled.")
    return _after_action(request, pk)
