"""Django admin for gated helpdesk actions: each organisation's directory connector (superusers
change it through ``directory_connector_set``) and the records of actions performed
(read-only, scoped to the organisations the staff user works on)."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from access import action_selectors
from access.action_models import DirectoryConnectorConfig, HelpdeskAction
from access.admin_actions import ServiceRefusalMixin
from access.connectors import connector_choices
from access.services.connectors import directory_connector_set
from accounts.admin import AssignedOrganizationFilter
from validation.admin import ReadOnlyAdmin, ScopedAdmin, _adopt


class DirectoryConnectorConfigForm(forms.ModelForm):
    connector = forms.ChoiceField(choices=connector_choices)

    class Meta:
        model = DirectoryConnectorConfig
        fields = ["organization", "connector", "password_delivery"]


@admin.register(DirectoryConnectorConfig)
class DirectoryConnectorConfigAdmin(ServiceRefusalMixin, ScopedAdmin):
    """Superusers only. Without a row an organisation uses DIRECTORY_CONNECTOR_DEFAULT."""

    form = DirectoryConnectorConfigForm
    list_display = ("organization", "connector", "password_delivery", "updated_at", "updated_by")
    readonly_fields = ("updated_at", "updated_by")

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "organization") if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        saved = directory_connector_set(
            actor=request.user,
            organization=obj.organization,
            connector=form.cleaned_data["connector"],
            password_delivery=form.cleaned_data["password_delivery"],
            request=request,
        )
        _adopt(obj, saved)


@admin.register(HelpdeskAction)
class HelpdeskActionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "action", "person", "organization", "technician", "connector", "reference")
    list_filter = (AssignedOrganizationFilter, "action", "connector")
    list_select_related = ("person", "organization", "technician")
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = (
        "created_at",
        "action",
        "organization",
        "person",
        "technician",
        "grant",
        "verification",
        "connector",
        "reference",
        "connector_reference",
        "message",
        "password_delivery",
        "contact_field",
        "previous_contact_notified_at",
        "new_contact_notified_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return action_selectors.helpdesk_action_list_for_user(user=request.user)
