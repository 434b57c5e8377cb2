import pytest
from django.db import connection

from audit.chain import security_event_seal
from audit.events import EventType
from audit.recorder import security_event_record

ON_POSTGRESQL = connection.vendor == "postgresql"
postgresql_only = pytest.mark.skipif(not ON_POSTGRESQL, reason="needs PostgreSQL (DATABASE_URL; CI sets it)")


def record_events(count: int, **kwargs) -> None:
    for n in range(count):
        security_event_record(event_type=EventType.AUTH_LOGOUT, details={"n": n}, **kwargs)


# SQL for "the event at these places in the chain", e.g. AT.format("sequence = 3").
AT = "id IN (SELECT event_id FROM audit_chainlink WHERE {})"
APPEND_ONLY = ("audit_securityevent", "audit_chainlink", "audit_checkpoint")


def tamper(sql: str, params=()) -> None:
    """Run SQL the way an attacker with the tables' owner's rights would: on PostgreSQL the
    append-only triggers are switched off around it."""
    with connection.cursor() as cursor:
        if ON_POSTGRESQL:
            for table in APPEND_ONLY:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        if ON_POSTGRESQL:
            for table in APPEND_ONLY:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def delete_events(where: str) -> None:
    """Delete the events at the chain places ``where`` (SQL on audit_chainlink) and their
    links, as an attacker covering their tracks would."""
    tamper(f"DELETE FROM audit_securityevent WHERE {AT.format(where)}")
    tamper(f"DELETE FROM audit_chainlink WHERE {where}")


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
