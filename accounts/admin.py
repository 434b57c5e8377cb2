"""Django admin for staff accounts, organisations and the directory.

Who sees what:
- Staff users, groups and organisations: superusers only.
- People: any staff member with Django's model permissions on Person, and then only the
  people of organisations they are assigned to (``accounts.selectors``). Another
  organisation's person is a 404 here too, and never appears in the change list, its
  filters, its search or the manager autocomplete.
- Directory import jobs: read-only, scoped like people (Django's view permission on
  ImportJob, then only the jobs of assigned organisations). The uploaded CSV is never shown.

Writes go through ``accounts.services`` so that each one records its security event,
including staff assignments made on an organisation's page.
"""

from __future__ import annotations

import zoneinfo

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db.models import Count
from django.http import Http404
from django.urls import reverse
from django.utils.html import format_html

from accounts import selectors, services
from accounts.admin_unlock import unlock_accounts
from accounts.forms import PersonForm, StaffChangeForm, StaffCreationForm
from accounts.models import ImportJob, Organization, Person, Role, User


def _adopt(obj, saved) -> None:
    """The admin keeps using the object its form built; give it the row a service saved."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


class SuperuserOnlyMixin:
    """Model permissions are not enough here: these pages grant privilege."""

    def _is_superuser(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return self._is_superuser(request)

    def has_view_permission(self, request, obj=None):
        return self._is_superuser(request)

    def has_add_permission(self, request):
        return self._is_superuser(request)

    def has_change_permission(self, request, obj=None):
        return self._is_superuser(request)

    def has_delete_permission(self, request, obj=None):
        return self._is_superuser(request)


# --- Staff accounts and groups ----------------------------------------------------


@admin.register(User)
class StaffUserAdmin(SuperuserOnlyMixin, DjangoUserAdmin):
    """Staff sign in by email with mandatory MFA. Email is fixed here (allauth keeps its
    verified address in step); deactivate rather than delete, the audit log refers to them."""

    form = StaffChangeForm
    add_form = StaffCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Organisations", {"fields": ("assigned_organizations",)}),
        ("Important dates", {"fields": ("last_login", "date_joined", "locked_at", "unlocked_at")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "full_name", "usable_password", "password1", "password2")}),
    )
    list_display = ("email", "full_name", "is_active", "is_staff", "is_superuser", "last_login", "locked_at")
    list_filter = ("is_active", "is_staff", "is_superuser", "groups")
    actions = (unlock_accounts,)
    search_fields = ("email", "full_name")
    ordering = ("email",)
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # A locked account is unlocked only with a reason, by the "Unlock" action.
        locked = ("is_active",) if obj.locked_at is not None else ()
        return ("email", "last_login", "date_joined", "locked_at", "unlocked_at", "assigned_organizations", *locked)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Assigned organisations")
    def assigned_organizations(self, obj: User) -> str:
        if obj.is_superuser:
            return "All of them (superuser)"
        names = selectors.organization_list_for_user(user=obj).values_list("name", flat=True)
        return ", ".join(names) or "None. Assign staff on an organisation's page."

    def save_model(self, request, obj, form, change):
        if change:
            return  # saved together with groups and permissions in save_related, by one service call
        password = form.cleaned_data.get("password1") if form.cleaned_data.get("set_usable_password") else None
        created = services.user_create(
            actor=request.user, email=obj.email, full_name=obj.full_name, password=password or None
        )
        _adopt(obj, created)

    def save_related(self, request, form, formsets, change):
        if not change:
            return
        changed = form.changed_data
        services.user_update(
            actor=request.user,
            user=form.instance,
            data={name: form.cleaned_data[name] for name in changed if name in services.STAFF_EDITABLE_FIELDS},
            groups=form.cleaned_data["groups"] if "groups" in changed else None,
            permissions=form.cleaned_data["user_permissions"] if "user_permissions" in changed else None,
        )


admin.site.unregister(Group)


@admin.register(Group)
class RoleGroupAdmin(SuperuserOnlyMixin, DjangoGroupAdmin):
    def has_delete_permission(self, request, obj=None):
        # The role groups are created by a migration and referred to by name.
        roles = {role.value for role in Role}
        return super().has_delete_permission(request, obj) and (obj is None or obj.name not in roles)


# --- Organisations ----------------------------------------------------------------


class OrganizationAdminForm(forms.ModelForm):
    staff = forms.ModelMultipleChoiceField(
        queryset=User.objects.filter(is_active=True, is_superuser=False),
        required=False,
        widget=FilteredSelectMultiple("staff", is_stacked=False),
        help_text="Technicians, approvers, auditors and org admins who may work on this organisation.",
    )

    class Meta:
        model = Organization
        fields = ["name", "slug", "time_zone", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["staff"].initial = list(selectors.staff_for_organization(organization=self.instance))

    def clean_time_zone(self) -> str:
        time_zone = self.cleaned_data["time_zone"]
        if time_zone not in zoneinfo.available_timezones():
            raise forms.ValidationError("Enter an IANA time zone such as Europe/London.")
        return time_zone


@admin.register(Organization)
class OrganizationAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    """Client organisations. Staff are assigned with the "Assigned staff" field, which
    calls organization_assign_staff / organization_unassign_staff for each change."""

    form = OrganizationAdminForm
    list_display = ("name", "slug", "time_zone", "active", "people_count", "created_at")
    list_filter = ("active",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    show_full_result_count = False
    readonly_fields = ("created_at",)
    _staff_fieldset = (
        "Assigned staff",
        {
            "fields": ("staff",),
            "description": (
                "Saving grants or removes the django-guardian permission accounts.work_on_organization "
                "through organization_assign_staff / organization_unassign_staff; every change is recorded "
                "as a security event (directory.staff_assigned / directory.staff_unassigned). "
                "Superusers see every organisation without being assigned."
            ),
        },
    )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return ((None, {"fields": ("name", "slug", "time_zone")}), self._staff_fieldset)
        return ((None, {"fields": ("name", "slug", "time_zone", "active", "created_at")}), self._staff_fieldset)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(people_count=Count("people"))

    @admin.display(description="People", ordering="people_count")
    def people_count(self, obj: Organization) -> int:
        return obj.people_count  # type: ignore[attr-defined]  # annotated by get_queryset

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: people, assignments and the audit log refer to it

    def save_model(self, request, obj, form, change):
        if change:
            data = {name: form.cleaned_data[name] for name in form.changed_data if name != "staff"}
            saved = services.organization_update(actor=request.user, organization=obj, data=data)
        else:
            saved = services.organization_create(
                actor=request.user, name=obj.name, slug=obj.slug, time_zone=obj.time_zone
            )
        _adopt(obj, saved)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        organization = form.instance
        current = set(selectors.staff_for_organization(organization=organization)) if change else set()
        wanted = set(form.cleaned_data["staff"])
        for user in sorted(wanted - current, key=lambda u: u.pk):
            services.organization_assign_staff(actor=request.user, organization=organization, user=user)
        for user in sorted(current - wanted, key=lambda u: u.pk):
            services.organization_unassign_staff(actor=request.user, organization=organization, user=user)


# --- People -----------------------------------------------------------------------


class AssignedOrganizationFilter(admin.SimpleListFilter):
    """Lists only the organisations the user is assigned to (a plain related-field
    filter would name every organisation in the database)."""

    title = "organisation"
    parameter_name = "organization"

    def lookups(self, request, model_admin):
        return [(str(o.pk), o.name) for o in selectors.organization_list_for_user(user=request.user)]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(organization_id=int(value)) if value.isdigit() else queryset.none()


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    """Directory entries, scoped to the user's organisations.

    A changed phone or email stamps contact_changed_at and records
    directory.person_contact_changed (accounts.services.person_update).
    """

    form = PersonForm
    list_display = (
        "full_name",
        "organization",
        "employee_id",
        "email",
        "phone",
        "department",
        "privileged",
        "contact_changed_at",
    )
    list_filter = (AssignedOrganizationFilter, "privileged")
    list_select_related = ("organization",)
    # Named for the search box and the autocomplete check; get_search_results does the matching.
    search_fields = ("full_name", "email", "employee_id", "phone")
    search_help_text = "Name, email, employee id or phone; at least two characters."
    autocomplete_fields = ("manager",)
    ordering = ("full_name", "id")
    show_full_result_count = False
    list_per_page = 50

    def get_queryset(self, request):
        return selectors.person_list_for_user(user=request.user)

    def get_object(self, request, object_id, from_field=None):
        # Django would redirect to the index with "doesn't exist"; out of scope is a plain 404.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such person")
        return obj

    def get_readonly_fields(self, request, obj=None):
        fields = ("contact_changed_at", "created_at", "updated_at")
        # People do not move between client organisations; their manager and reports stay put.
        return ("organization", *fields) if obj is not None else fields

    def get_fields(self, request, obj=None):
        fields = ["organization", "employee_id", "full_name", "email", "phone", "department", "manager", "privileged"]
        return fields if obj is None else [*fields, "contact_changed_at", "created_at", "updated_at"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "organization":
            kwargs["queryset"] = selectors.organization_list_for_user(user=request.user)
        elif db_field.name == "manager":
            kwargs["queryset"] = selectors.person_list_for_user(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        match = selectors.person_search_filter(query=search_term)
        return (queryset.filter(match) if match is not None else queryset.none()), False

    def save_model(self, request, obj, form, change):
        data = {name: value for name, value in form.cleaned_data.items() if name in services.PERSON_EDITABLE_FIELDS}
        if change:
            saved = services.person_update(actor=request.user, person=obj, data=data)
        else:
            organization = data.pop("organization")
            saved = services.person_create(actor=request.user, organization=organization, data=data)
        _adopt(obj, saved)

    def delete_model(self, request, obj):
        services.person_delete(actor=request.user, person=obj)

    def delete_queryset(self, request, queryset):
        for person in queryset.select_related("organization"):
            services.person_delete(actor=request.user, person=person)


# --- Directory import jobs ------------------------------------------------------------


def _result_count(key: str, label: str):
    """A column for one count of a finished job's result (empty while it runs or after a crash)."""

    @admin.display(description=label)
    def count(self, obj: ImportJob) -> int | None:
        return obj.result.get(key) if obj.status == ImportJob.Status.DONE else None

    return count


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Who imported what, and with what outcome. Read-only: jobs are made by the upload
    page and run by the worker. Counts and the failure come from ``result``; the row
    problems (they quote emails) stay on the portal's job page."""

    list_display = (
        "created_at",
        "organization",
        "created_by",
        "dry_run",
        "status",
        "rows",
        "created",
        "updated",
        "contact_changed",
        "problems",
        "finished_at",
    )
    list_filter = (AssignedOrganizationFilter, "status", "dry_run")
    list_select_related = ("organization", "created_by")
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    # Never csv_text: the uploaded file holds people's phones and emails.
    fields = (
        "organization",
        "created_by",
        "file_name",
        "dry_run",
        "status",
        "created_at",
        "finished_at",
        "rows",
        "created",
        "updated",
        "contact_changed",
        "unchanged",
        "not_in_file",
        "problems",
        "failure",
        "report",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return selectors.import_job_list_for_user(user=request.user)

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such import job")
        return obj

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    rows = _result_count("rows", "Rows")
    created = _result_count("created", "Created")
    updated = _result_count("updated", "Updated")
    contact_changed = _result_count("contact_changed", "Contact changed")
    unchanged = _result_count("unchanged", "Unchanged")
    not_in_file = _result_count("not_in_file", "Not in file (left alone)")
    problems = _result_count("error_count", "Problems")

    @admin.display(description="Failure")
    def failure(self, obj: ImportJob) -> str:
        return obj.result.get("failure", "")

    @admin.display(description="Report")
    def report(self, obj: ImportJob) -> str:
        url = reverse("people_import_job", args=[obj.organization.slug, obj.pk])
        return format_html('<a href="{}">Open the job page</a> (row problems; org admins only)', url)
