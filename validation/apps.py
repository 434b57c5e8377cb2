from django.apps import AppConfig


class ValidationConfig(AppConfig):
    name = "validation"

    def ready(self) -> None:
        from audit.field_history import field_history_register
        from validation.models import VerificationPolicy

        # Not PersonAuthenticator: it holds an end user's (sealed) TOTP key.
        field_history_register(VerificationPolicy, exclude_fields=["updated_at"])
