"""Read-only admin for access review campaigns and their items, scoped to the organisations
the staff member works on (superusers: all); another organisation's row is a 404. Decisions
are made on the portal's review page, through ``access.services.reviews``."""

from __future__ import annotations

from django.contrib import admin

from access.review_models import ReviewCampaign, ReviewItem
from accounts.admin import AssignedOrganizationFilter
from accounts.selectors import organization_list_for_user
from validation.admin import ReadOnlyAdmin


class ReviewItemInline(admin.TabularInline):
    model = ReviewItem
    fields = ("technician", "eligibility", "decision", "reviewer", "decided_at", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ReviewCampaign)
class ReviewCampaignAdmin(ReadOnlyAdmin):
    list_display = ("organization", "started_at", "started_by", "deadline", "status", "closed_at")
    list_filter = (AssignedOrganizationFilter, "status")
    list_select_related = ("organization", "started_by")
    ordering = ("-started_at", "-id")
    fields = ("organization", "started_by", "started_at", "deadline", "status", "closed_at")
    readonly_fields = fields
    inlines = (ReviewItemInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(organization__in=organization_list_for_user(user=request.user))


class CampaignOrganizationFilter(AssignedOrganizationFilter):
    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(campaign__organization_id=int(value)) if value.isdigit() else queryset.none()


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdmin):
    list_display = ("campaign", "technician", "eligibility", "decision", "reviewer", "decided_at")
    list_filter = (CampaignOrganizationFilter, "decision")
    list_select_related = ("campaign__organization", "technician", "eligibility__role", "reviewer")
    search_fields = ("technician__email", "technician__full_name")
    ordering = ("-campaign__started_at", "id")
    show_full_result_count = False
    fields = ("campaign", "eligibility", "technician", "decision", "reviewer", "decided_at", "reason")
    readonly_fields = fields

    def get_queryset(self, request):
        visible = organization_list_for_user(user=request.user)
        return super().get_queryset(request).filter(campaign__organization__in=visible)
