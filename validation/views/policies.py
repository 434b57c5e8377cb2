"""Verification policies per organisation: everyone assigned may read them; org admins
(and superusers) may change them within the hard floors of ``validation.policy``."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import User
from accounts.selectors import organization_get_for_user
from validation import services
from validation.forms import PolicyForm
from validation.models import Action
from validation.policy import requirement_describe, requirement_for


@require_GET
@login_required
def policy_list(request: HttpRequest, slug: str) -> HttpResponse:
    user = cast(User, request.user)
    organization = organization_get_for_user(user=user, slug=slug)
    rows = [
        {
            "policy": policy,
            "description": requirement_describe(requirement_for(policy=policy, privileged=False)),
            "privileged_description": requirement_describe(requirement_for(policy=policy, privileged=True)),
        }
        for policy in services.policies_for(organization=organization)
    ]
    context = {"organization": organization, "rows": rows, "can_edit": services.may_edit_policies(user, organization)}
    return render(request, "validation/policies/list.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def policy_edit(request: HttpRequest, slug: str, action: str) -> HttpResponse:
    user = cast(User, request.user)
    organization = organization_get_for_user(user=user, slug=slug)
    if action not in Action.values:
        raise Http404("No such action")
    if not services.may_edit_policies(user, organization):
        return render(request, "validation/policies/forbidden.html", {"organization": organization}, status=403)
    policy = services.policy_for(organization=organization, action=action)
    form = PolicyForm(request.POST if request.method == "POST" else None, initial=PolicyForm.initial_for(policy))
    if form.is_bound and form.is_valid():
        try:
            services.policy_update(actor=user, policy=policy, data=form.cleaned_data, request=request)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Policy for {policy.get_action_display().lower()} saved.")
            return redirect("validation:policy_list", slug=organization.slug)
    context = {"organization": organization, "policy": policy, "form": form}
    return render(request, "validation/policies/edit.html", context)
