"""Django admin for Just-In-Time access, scoped like ``validation.admin``: staff see the rows
of organisations they work on (their own requests and grants too; superusers: all), and
another organisation's row is a 404.

Every write goes through ``access.services``, so each is checked and recorded like in the
portal: roles (superusers only, ``role_create``/``role_update``), eligibilities (org admins:
add with ``eligibility_create``, end with an action), decisions on requests (an action
calling ``access_request_approve``/``access_request_deny``, which refuse the requester and
record the attempt), revocation and break-glass review (actions, with a reason or notes).
Requests, approvals and grants are otherwise read-only: no row is added, changed or deleted
here, so the admin offers no path around the services.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils import timezone

from access import params, selectors, services
from access.admin_actions import ServiceRefusalMixin, is_org_admin, with_text
from access.models import MIRRORABLE_PERMISSIONS, AccessRequest, Approval, Eligibility, Grant, Role
from access.services.roles import ROLE_FIELDS
from accounts.admin import AssignedOrganizationFilter
from accounts.selectors import organization_list_for_user
from validation.admin import NoWritesMixin, ReadOnlyAdmin, ScopedAdmin, _adopt

# --- Roles --------------------------------------------------------------------------------


class RoleAdminForm(forms.ModelForm):
    actions = forms.MultipleChoiceField(
        choices=[(a.value, a.label) for a in params.GRANTABLE_ACTIONS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Helpdesk actions a grant of this role allows.",
    )

    class Meta:
        model = Role
        fields = [*sorted(ROLE_FIELDS), "permissions"]


@admin.register(Role)
class RoleAdmin(ServiceRefusalMixin, ScopedAdmin):
    """Roles are the same for every organisation. Only superusers define or change them
    (``role_create``/``role_update``); deactivate a role rather than delete it."""

    form = RoleAdminForm
    list_display = (
        "name",
        "active",
        "break_glass",
        "max_duration",
        "approvals_required",
        "approver_group",
        "requires_mfa_reauth",
        "covers_privileged",
    )
    list_filter = ("active", "break_glass")
    list_select_related = ("approver_group",)
    search_fields = ("name",)
    filter_horizontal = ("permissions",)
    readonly_fields = ("created_at", "updated_at")
    fields = (
        "name",
        "description",
        "actions",
        "covers_privileged",
        "max_duration",
        "approvals_required",
        "approver_group",
        "requires_mfa_reauth",
        "break_glass",
        "active",
        "permissions",
        "created_at",
        "updated_at",
    )

    def get_fields(self, request, obj=None):
        return self.fields if obj is not None else self.fields[:-2]  # no timestamps before it exists

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "permissions":
            kwargs["queryset"] = db_field.remote_field.model.objects.filter(MIRRORABLE_PERMISSIONS)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return  # saved with its permissions in save_related, by one service call
        data = {name: form.cleaned_data[name] for name in ROLE_FIELDS}
        created = services.role_create(
            actor=request.user, data=data, permissions=form.cleaned_data["permissions"], request=request
        )
        _adopt(obj, created)

    def save_related(self, request, form, formsets, change):
        if not change:
            return  # role_create set the permissions
        changed = set(form.changed_data)
        services.role_update(
            actor=request.user,
            role=form.instance,
            data={name: form.cleaned_data[name] for name in ROLE_FIELDS & changed},
            permissions=form.cleaned_data["permissions"] if "permissions" in changed else None,
            request=request,
        )


# --- Eligibilities ------------------------------------------------------------------------


class EligibilityAdminForm(forms.ModelForm):
    class Meta:
        model = Eligibility
        fields = ["technician", "role", "organization", "valid_until"]


@admin.register(Eligibility)
class EligibilityAdmin(ServiceRefusalMixin, ScopedAdmin):
    """Org admins make technicians of their organisations eligible (``eligibility_create``)
    and end eligibilities with the action below (``eligibility_end``). No edits, no deletes."""

    form = EligibilityAdminForm
    list_display = ("technician", "role", "organization", "valid_until", "created_by", "created_at", "ended_at")
    list_filter = (AssignedOrganizationFilter, ("ended_at", admin.EmptyFieldListFilter), "role")
    list_select_related = ("technician", "role", "organization", "created_by")
    search_fields = ("technician__email", "technician__full_name")
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    actions = ("end_eligibilities",)

    def get_queryset(self, request):
        return selectors.eligibility_list_for_user(user=request.user)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("technician", "role", "organization", "valid_until")
        return ("technician", "role", "organization", "valid_until", "created_by", "created_at", "ended_at", "ended_by")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "organization":
            kwargs["queryset"] = organization_list_for_user(user=request.user)
        elif db_field.name == "technician":
            kwargs["queryset"] = selectors.technician_list_for_user(user=request.user)
        elif db_field.name == "role":
            kwargs["queryset"] = Role.objects.filter(active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and is_org_admin(request)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_end_permission(self, request):
        return is_org_admin(request)

    def save_model(self, request, obj, form, change):
        created = services.eligibility_create(
            actor=request.user,
            technician=form.cleaned_data["technician"],
            role=form.cleaned_data["role"],
            organization=form.cleaned_data["organization"],
            valid_until=form.cleaned_data["valid_until"],
            request=request,
        )
        _adopt(obj, created)

    @admin.action(description="End selected eligibilities (cancels requests, revokes grants)", permissions=["end"])
    def end_eligibilities(self, request, queryset):
        return with_text(
            self,
            request,
            queryset.filter(ended_at__isnull=True).select_related("organization", "role", "technician"),
            field=forms.CharField(label="Reason (optional)", max_length=200, required=False),
            title="End eligibilities",
            submit="End them",
            apply=lambda eligibility, reason: services.eligibility_end(
                actor=request.user, eligibility=eligibility, reason=reason, request=request
            ),
        )


# --- Requests and approvals (read-only; decisions through the services) ----------------------


class ApprovalInline(NoWritesMixin, admin.TabularInline):
    model = Approval
    fields = ("approver", "decision", "comment", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(AccessRequest)
class AccessRequestAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "technician", "role", "organization", "ticket_reference", "status", "break_glass")
    list_filter = (AssignedOrganizationFilter, "status", "break_glass")
    list_select_related = ("technician", "role", "organization")
    search_fields = ("ticket_reference",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = (
        "technician",
        "role",
        "organization",
        "ticket_reference",
        "justification",
        "requested_duration",
        "scheduled_start",
        "extends",
        "break_glass",
        "approvals_required",
        "status",
        "created_at",
        "review_expires_at",
        "decided_at",
        "activate_by",
        "ended_reason",
    )
    readonly_fields = fields
    inlines = (ApprovalInline,)
    actions = ("approve_requests", "deny_requests")

    def get_queryset(self, request):
        return selectors.access_request_list_visible_to(user=request.user)

    def has_decide_permission(self, request):
        return selectors.may_approve_any(request.user)

    def _decide(self, request, queryset, decide, title: str):
        return with_text(
            self,
            request,
            queryset.select_related("role", "organization", "technician"),
            field=forms.CharField(
                label="Comment (optional)",
                max_length=2000,
                required=False,
                widget=forms.Textarea(attrs={"rows": 2}),
            ),
            title=title,
            submit=title,
            apply=lambda access_request, comment: decide(
                actor=request.user, access_request=access_request, comment=comment, request=request
            ),
        )

    @admin.action(description="Approve selected requests (as yourself, never your own)", permissions=["decide"])
    def approve_requests(self, request, queryset):
        return self._decide(request, queryset, services.access_request_approve, "Approve requests")

    @admin.action(description="Deny selected requests", permissions=["decide"])
    def deny_requests(self, request, queryset):
        return self._decide(request, queryset, services.access_request_deny, "Deny requests")


class RequestOrganizationFilter(AssignedOrganizationFilter):
    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(request__organization_id=int(value)) if value.isdigit() else queryset.none()


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "request", "approver", "decision")
    list_filter = (RequestOrganizationFilter, "decision")
    list_select_related = ("request__role", "request__organization", "request__technician", "approver")
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = ("request", "approver", "requester", "decision", "comment", "created_at")
    readonly_fields = fields

    def get_queryset(self, request):
        visible = selectors.access_request_list_visible_to(user=request.user)
        return super().get_queryset(request).filter(request__in=visible)


# --- Grants (read-only; revocation and review through the services) ----------------------


@admin.register(Grant)
class GrantAdmin(ReadOnlyAdmin):
    list_display = (
        "technician",
        "role",
        "organization",
        "starts_at",
        "expires_at",
        "state",
        "break_glass",
        "review_pending",
        "cleanup_lag",
    )
    list_filter = (
        AssignedOrganizationFilter,
        "break_glass",
        "review_required",
        ("revoked_at", admin.EmptyFieldListFilter),
    )
    list_select_related = ("technician", "role", "organization")
    ordering = ("-starts_at", "-id")
    show_full_result_count = False
    fields = (
        "request",
        "technician",
        "role",
        "organization",
        "starts_at",
        "expires_at",
        "mfa_reauthenticated_at",
        "revoked_at",
        "revoked_by",
        "reason",
        "mirror_applied_at",
        "mirror_cleaned_at",
        "cleanup_lag",
        "expiry_notice_sent_at",
        "break_glass",
        "review_required",
        "reviewed_at",
        "reviewed_by",
        "review_notes",
    )
    readonly_fields = fields
    actions = ("revoke_grants", "review_break_glass")

    def get_queryset(self, request):
        return selectors.grant_list_visible_to(user=request.user)

    @admin.display(description="State")
    def state(self, obj: Grant) -> str:
        return selectors.grant_state(obj, at=timezone.now())

    @admin.display(description="Review pending", boolean=True)
    def review_pending(self, obj: Grant) -> bool:
        return obj.review_pending

    def has_revoke_permission(self, request):
        return is_org_admin(request)

    @admin.action(description="Revoke selected grants now (with a reason)", permissions=["revoke"])
    def revoke_grants(self, request, queryset):
        return with_text(
            self,
            request,
            queryset.select_related("role", "organization", "technician"),
            field=forms.CharField(label="Reason", max_length=200),
            title="Revoke grants",
            submit="Revoke them",
            apply=lambda grant, reason: services.grant_revoke(
                actor=request.user, grant=grant, reason=reason, request=request
            ),
        )

    @admin.action(description="Record the review of selected break-glass uses", permissions=["revoke"])
    def review_break_glass(self, request, queryset):
        return with_text(
            self,
            request,
            queryset.select_related("role", "organization", "technician"),
            field=forms.CharField(label="Review notes", max_length=4000, widget=forms.Textarea(attrs={"rows": 3})),
            title="Review break-glass use",
            submit="Record the review",
            apply=lambda grant, notes: services.break_glass_review(
                actor=request.user, grant=grant, notes=notes, request=request
            ),
        )


# Access review campaigns (read-only), directory connectors and action records: own modules.
from access import admin_connectors, admin_reviews  # noqa: E402, F401
