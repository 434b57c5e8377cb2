from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit"

    def ready(self) -> None:
        from audit.field_history import connect_celery_signals
        from audit.forwarding import security_events_forward
        from audit.signals import security_events_sealed

        connect_celery_signals()
        # Each event goes to the SIEM once it is sealed, with its place in the chain.
        security_events_sealed.connect(security_events_forward, dispatch_uid="audit.forwarding")
