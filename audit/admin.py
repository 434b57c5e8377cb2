from auditlog.admin import LogEntryAdmin as AuditlogLogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin

from audit.models import Checkpoint, SecurityEvent


class SuperuserReadOnlyAdmin(admin.ModelAdmin):
    """Superusers may look; nobody adds, changes or deletes (the models and, on PostgreSQL,
    the database refuse too). Auditors use the audit pages, which are scoped."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return self.has_view_permission(request)


@admin.register(SecurityEvent)
class SecurityEventAdmin(SuperuserReadOnlyAdmin):
    list_display = (
        "created_at",
        "sequence",
        "event_type",
        "actor_label",
        "organization_label",
        "target_label",
        "source_ip",
    )
    list_filter = ("event_type",)
    search_fields = ("actor_label", "target_label", "request_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_select_related = ("link",)

    @admin.display(description="sequence")
    def sequence(self, event: SecurityEvent) -> int | None:
        link = getattr(event, "link", None)  # none while the event waits for the sealer
        return link.sequence if link is not None else None


@admin.register(Checkpoint)
class CheckpointAdmin(SuperuserReadOnlyAdmin):
    list_display = ("created_at", "kind", "sequence", "hash", "key_id")
    list_filter = ("kind",)
    show_full_result_count = False


# django-auditlog's own admin searches actor first/last names, which this project's staff
# user does not have (a search there was a 500): the same page searching fields that exist,
# and, like the security log, read-only and for superusers only.
class FieldHistoryAdmin(SuperuserReadOnlyAdmin, AuditlogLogEntryAdmin):
    search_fields = ["timestamp", "object_repr", "changes", "actor__email", "actor__full_name", "remote_addr"]


if admin.site.is_registered(LogEntry):
    admin.site.unregister(LogEntry)
admin.site.register(LogEntry, FieldHistoryAdmin)
