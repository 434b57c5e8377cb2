from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Just-In-Time access"

    def ready(self) -> None:
        from access.mirror import mirror_permissions_ensure

        # The jit_* object permissions exist as soon as the tables do (also after a test flush).
        post_migrate.connect(mirror_permissions_ensure, sender=self, dispatch_uid="access_mirror_permissions")

        from access.models import DirectoryConnectorConfig, Eligibility, Grant, HelpdeskAction, Role
        from access.review_models import ReviewCampaign, ReviewItem
        from audit.field_history import field_history_register

        field_history_register(Role, exclude_fields=["updated_at"])
        field_history_register(Eligibility)
        # The mirror's and the expiry notice's bookkeeping changes on its own schedule: not history.
        field_history_register(
            Grant,
            exclude_fields=["mirror_applied_at", "mirror_cleaned_at", "cleanup_lag", "expiry_notice_sent_at"],
        )
        field_history_register(DirectoryConnectorConfig)
        field_history_register(HelpdeskAction)
        field_history_register(ReviewCampaign)
        field_history_register(ReviewItem)
