"""Helpers of the access admin: a service's refusal on save shown on the page, and admin
actions that ask for a reason, a comment or review notes before calling a service."""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse

from access import services
from accounts.models import Role as StaffRole


def is_org_admin(request) -> bool:
    user = request.user
    return user.is_active and (user.is_superuser or user.has_role(StaffRole.ORG_ADMIN))


class ServiceRefusalMixin:
    """A service's refusal (``AccessError``) on save is shown as an error on the same page;
    the admin's transaction rolls back, so nothing changed."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except services.AccessError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


def with_text(
    modeladmin, request, queryset, *, field: forms.Field, title: str, submit: str, apply: Callable[..., None]
):
    """An admin action that asks for one text first (a reason, a comment, review notes) on an
    intermediate page, then calls ``apply(obj, text)`` for each selected row. Refusals are
    reported per row; they change nothing."""
    form_class = type("ActionTextForm", (forms.Form,), {"text": field})
    form = form_class(request.POST) if request.POST.get("confirmed") else form_class()
    if form.is_bound and form.is_valid():
        done = 0
        for obj in queryset:
            try:
                apply(obj, form.cleaned_data["text"])
            except services.AccessError as exc:
                modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            modeladmin.message_user(request, f"{title}: {done} done.", messages.SUCCESS)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "submit": submit,
        "form": form,
        "queryset": queryset,
        "action": request.POST.get("action", ""),
        "opts": modeladmin.model._meta,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/access/action_text.html", context)
