"""Django admin for caller verification, scoped like ``accounts.admin``: staff see the rows of
organisations they are assigned to (superusers: all); another organisation's row is a 404.

- Policies: editable by org admins (and superusers) with Django's change permission,
  through ``services.policy_update`` so the hard floors hold and the change is recorded.
  Only superusers add or delete them (defaults are created on first use).
- Requests, challenges, authenticators and per-person state: read-only. Secrets (code
  HMACs, link nonce hashes, sealed keys) are never shown. A verification lock is lifted
  only through ``services.lockout.person_lock_lift`` (the verify page of the person, by a
  second org admin, with a reason); here it is shown with who set and last lifted it.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import Http404

from accounts.admin import AssignedOrganizationFilter
from accounts.models import Role
from accounts.selectors import organization_list_for_user, person_list_for_user
from validation import selectors, services
from validation.forms import PolicyAdminForm
from validation.models import (
    Challenge,
    PersonAuthenticator,
    PersonVerificationState,
    VerificationPolicy,
    VerificationRequest,
)
from validation.services.policies import POLICY_FIELDS


def _adopt(obj, saved) -> None:
    """The admin keeps using the object its form built; give it the row the service saved."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


class ScopedAdmin(admin.ModelAdmin):
    """Out of scope is a plain 404 (Django would redirect to the index with "doesn't exist")."""

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("Not found")
        return obj


class NoWritesMixin:
    """Rows that change only through services: the admin shows them, never edits them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(NoWritesMixin, ScopedAdmin):
    pass


# --- Policies -----------------------------------------------------------------------------


@admin.register(VerificationPolicy)
class VerificationPolicyAdmin(ScopedAdmin):
    form = PolicyAdminForm
    list_display = (
        "organization",
        "action",
        "allowed",
        "min_methods",
        "min_strong_methods",
        "required",
        "privileged_extra_methods",
        "updated_at",
        "updated_by",
    )
    list_filter = (AssignedOrganizationFilter, "action")
    list_select_related = ("organization", "updated_by")
    ordering = ("organization__name", "action")
    fields = ("organization", "action", *POLICY_FIELDS, "updated_at", "updated_by")

    def get_queryset(self, request):
        organizations = organization_list_for_user(user=request.user)
        return super().get_queryset(request).filter(organization__in=organizations)

    def get_readonly_fields(self, request, obj=None):
        return ("updated_at", "updated_by") if obj is None else ("organization", "action", "updated_at", "updated_by")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "organization":
            kwargs["queryset"] = organization_list_for_user(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        # The portal's rule too: only org admins change policies, whatever model permissions say.
        user = request.user
        if not super().has_change_permission(request, obj):
            return False
        if obj is None:
            return user.is_superuser or user.has_role(Role.ORG_ADMIN)
        return services.may_edit_policies(user, obj.organization)

    @admin.display(description="Allowed methods")
    def allowed(self, obj: VerificationPolicy) -> str:
        return ", ".join(obj.allowed_methods)

    @admin.display(description="Required methods")
    def required(self, obj: VerificationPolicy) -> str:
        return ", ".join(obj.required_methods)

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in POLICY_FIELDS}
        policy = obj if change else services.policy_for(organization=obj.organization, action=obj.action)
        saved = services.policy_update(actor=request.user, policy=policy, data=data, request=request)
        _adopt(obj, saved)

    def delete_model(self, request, obj):
        services.policy_delete(actor=request.user, policy=obj, request=request)

    def delete_queryset(self, request, queryset):
        for policy in queryset:
            services.policy_delete(actor=request.user, policy=policy, request=request)


# --- Requests and challenges (read-only) ------------------------------------------------

# Never code_hmac or link_nonce_hash.
CHALLENGE_FIELDS = (
    "method",
    "destination_masked",
    "status",
    "attempts",
    "max_attempts",
    "created_at",
    "sent_at",
    "delivered_at",
    "answered_at",
    "expires_at",
    "failure_reason",
    "provider_message_id",
)


class ChallengeInline(NoWritesMixin, admin.TabularInline):
    model = Challenge
    fields = CHALLENGE_FIELDS
    readonly_fields = CHALLENGE_FIELDS
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(VerificationRequest)
class VerificationRequestAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "organization",
        "person",
        "action",
        "ticket_reference",
        "technician",
        "status",
        "verified_at",
        "consumed_at",
    )
    list_filter = (AssignedOrganizationFilter, "status", "action")
    list_select_related = ("organization", "person", "technician")
    search_fields = ("ticket_reference",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = (
        "organization",
        "person",
        "technician",
        "action",
        "ticket_reference",
        "status",
        "created_at",
        "expires_at",
        "verified_at",
        "consumed_at",
        "ended_reason",
        "policy_snapshot",
        "version",
    )
    readonly_fields = fields
    inlines = (ChallengeInline,)

    def get_queryset(self, request):
        return selectors.verification_list_for_user(user=request.user)


class ChallengeOrganizationFilter(AssignedOrganizationFilter):
    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(request__organization_id=int(value)) if value.isdigit() else queryset.none()


@admin.register(Challenge)
class ChallengeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "request", "method", "destination_masked", "status", "attempts", "expires_at")
    list_filter = (ChallengeOrganizationFilter, "method", "status")
    list_select_related = ("request__person", "request__organization")
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = ("request", *CHALLENGE_FIELDS)
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).filter(request__in=selectors.verification_list_for_user(user=request.user))


# --- End users' authenticators and verification state (read-only) -------------------------


class PersonOrganizationFilter(AssignedOrganizationFilter):
    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(person__organization_id=int(value)) if value.isdigit() else queryset.none()


@admin.register(PersonAuthenticator)
class PersonAuthenticatorAdmin(ReadOnlyAdmin):
    # Never sealed_key, pending_sealed_key or enrollment_nonce_hash.
    fields = ("person", "confirmed_at", "created_at", "enrollment_pending", "enrollment_expires_at")
    readonly_fields = fields
    list_display = ("person", "confirmed_at", "enrollment_pending", "enrollment_expires_at")
    list_filter = (PersonOrganizationFilter,)
    list_select_related = ("person",)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(person__in=person_list_for_user(user=request.user))

    @admin.display(description="Enrolment pending", boolean=True)
    def enrollment_pending(self, obj: PersonAuthenticator) -> bool:
        return bool(obj.pending_sealed_key)


@admin.register(PersonVerificationState)
class PersonVerificationStateAdmin(ReadOnlyAdmin):
    fields = (
        "person",
        "consecutive_failures",
        "locked_at",
        "locked_reason",
        "locked_request",
        "locked_technician",
        "lifted_at",
        "lifted_by",
        "lift_reason",
    )
    readonly_fields = fields
    list_display = ("person", "consecutive_failures", "locked_at", "locked_reason", "locked_technician", "lifted_at")
    list_filter = (PersonOrganizationFilter, ("locked_at", admin.EmptyFieldListFilter))
    list_select_related = ("person", "locked_technician")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(person__in=person_list_for_user(user=request.user))
