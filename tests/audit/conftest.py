import pytest
from django.conf import settings
from django.db import connection

from audit.chain import security_event_seal
from audit.events import EventType
from audit.recorder import security_event_record

ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
postgresql_only = pytest.mark.skipif(not ON_POSTGRESQL, reason="needs PostgreSQL (DATABASE_URL; CI sets it)")


def record_events(count: int, **kwargs) -> None:
    for n in range(count):
        security_event_record(event_type=EventType.AUTH_LOGOUT, details={"n": n}, **kwargs)


def tamper(sql: str, params=(), *, table: str = "audit_securityevent") -> None:
    """Run SQL the way an attacker with the table owner's rights would: on PostgreSQL the
    append-only trigger is switched off around it."""
    with connection.cursor() as cursor:
        if ON_POSTGRESQL:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        if ON_POSTGRESQL:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


@pytest.fixture
def sealed_events(db):
    """``sealed_events(n)`` records n events and seals them (tests run inside a transaction
    that never commits, so the recorder's after-commit sealing does not run by itself)."""

    def make(count: int = 5) -> None:
        record_events(count)
        security_event_seal()

    return make


@pytest.fixture
def checkpoint_file(settings, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    settings.AUDIT_CHECKPOINT_FILE = str(path)
    return path


# The auditor pages' fixtures (tests/audit/test_views.py, test_export.py, test_report.py, test_forwarding.py).
from tests.audit.auditor_fixtures import *  # noqa: E402,F403
