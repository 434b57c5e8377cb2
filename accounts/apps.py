from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and directory"

    def ready(self) -> None:
        from accounts import receivers  # noqa: F401  (connects allauth signals)
        from accounts.models import Organization, Person
        from audit.field_history import field_history_register

        field_history_register(Organization)
        # search_text is derived from the other fields; updated_at changes with every save.
        field_history_register(Person, exclude_fields=["search_text", "updated_at"])
