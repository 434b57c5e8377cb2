"""The staff admin's "Unlock selected accounts" action: asks for a reason on an intermediate
page, then calls ``accounts.services.user_unlock`` for each selected account (the same
service as the org admins' page, which checks the actor and records the unlock)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.template.response import TemplateResponse

from accounts import services


class UnlockReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        min_length=services.UNLOCK_REASON_MIN,
        max_length=services.UNLOCK_REASON_MAX,
        help_text="Recorded in the security log with the unlock.",
    )


@admin.action(description="Unlock selected accounts locked for inactivity (with a reason)")
def unlock_accounts(modeladmin, request, queryset):
    queryset = queryset.filter(locked_at__isnull=False)
    form = UnlockReasonForm(request.POST) if request.POST.get("confirmed") else UnlockReasonForm()
    if form.is_bound and form.is_valid():
        done = 0
        for user in queryset:
            try:
                services.user_unlock(actor=request.user, user=user, reason=form.cleaned_data["reason"], request=request)
            except services.UnlockError as exc:
                modeladmin.message_user(request, f"{user}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            modeladmin.message_user(request, f"Unlocked {done} account(s).", messages.SUCCESS)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Unlock accounts",
        "form": form,
        "queryset": queryset,
        "action": request.POST.get("action", ""),
        "opts": modeladmin.model._meta,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/accounts/unlock.html", context)
