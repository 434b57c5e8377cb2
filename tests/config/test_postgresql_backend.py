"""The PostgreSQL backend's health check (config/postgresql): no statement while the
connection is quiet, Django's ``SELECT 1`` (and a new connection) once the server has ended
it, so the request after a restart still works."""

import select
import time
from datetime import UTC, datetime

import psycopg
import pytest
from django.db import DataError, connection, connections
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg.pq import Format

from config.postgresql.base import DatabaseWrapper, TimestamptzLoader, timestamptz_loader

TIMESTAMPTZ_OID = 1184

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL; CI sets it)"),
    pytest.mark.django_db(transaction=True),  # an idle connection, in autocommit, as between requests
]


@pytest.fixture
def checks(monkeypatch):
    """The times Django's own check (``SELECT 1``) ran."""
    calls = []
    original = DatabaseWrapper.is_usable

    def is_usable(self):
        calls.append(self.alias)
        return original(self)

    monkeypatch.setattr(DatabaseWrapper, "is_usable", is_usable)
    return calls


def _new_request() -> None:
    """What Django does at the start of a request: the next cursor checks the connection."""
    connection.health_check_done = False


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate(pid: int) -> None:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**{k: v for k, v in params.items() if k != "prepare_threshold"}, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    poller = select.poll()
    poller.register(connection.connection.fileno(), select.POLLIN)
    deadline = time.monotonic() + 5
    while not poller.poll(50) and time.monotonic() < deadline:
        pass


def test_the_portal_uses_it():
    assert isinstance(connections["default"], DatabaseWrapper)
    assert connection.health_check_enabled


def test_a_quiet_connection_is_used_without_a_statement(checks):
    pid = _backend_pid()
    _new_request()
    assert _backend_pid() == pid  # the same connection, kept
    assert checks == []
    assert connection.health_check_done


def test_a_connection_the_server_ended_is_replaced_before_the_request_uses_it(checks):
    pid = _backend_pid()
    _terminate(pid)
    _new_request()
    new_pid = _backend_pid()  # no error: the check saw the server's goodbye and reconnected
    assert new_pid != pid
    assert checks == ["default"]


def test_a_connection_in_a_transaction_gets_djangos_check(checks):
    _backend_pid()
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")  # not idle: what is on the socket says nothing about the server
        try:
            _new_request()
            connection.close_if_health_check_failed()
        finally:
            cursor.execute("ROLLBACK")
    assert checks == ["default"]


def test_an_unusable_connection_object_gets_djangos_check(checks):
    _backend_pid()
    connection.connection.close()  # closed on our side: psycopg knows
    _new_request()
    assert _backend_pid()  # reconnected
    assert checks == ["default"]


# --- timestamptz values read with Python's C parser ---------------------------------------

AS_DJANGO_READS = {
    "2026-11-30 01:57:04.123456+00": datetime(2026, 11, 30, 1, 57, 4, 123456, tzinfo=UTC),
    "2026-11-30 01:57:04+00": datetime(2026, 11, 30, 1, 57, 4, tzinfo=UTC),
    "2026-11-30 07:27:04.5+05:30": datetime(2026, 11, 30, 1, 57, 4, 500000, tzinfo=UTC),
    "0001-01-01 00:00:00+00": datetime(1, 1, 1, tzinfo=UTC),
    "9999-12-31 23:59:59.999999+00": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
}


def test_timestamps_read_as_djangos_own_loader_reads_them():
    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
        assert issubclass(loader, TimestamptzLoader) and loader.timezone == connection.timezone
        for text, expected in AS_DJANGO_READS.items():
            cursor.execute("SELECT %s::timestamptz", [text])
            value = cursor.fetchone()[0]
            assert value == expected and value.tzinfo == connection.timezone, text
            django_loader = BaseTzLoader(TIMESTAMPTZ_OID, cursor.cursor)
            django_loader.timezone = connection.timezone
            assert django_loader.load(str(value.isoformat(" ")).encode()) == value


@pytest.mark.parametrize("text", ["infinity", "-infinity", "0044-03-15 00:00:00+00 BC"])
def test_what_python_cannot_hold_is_refused_as_django_refuses_it(text):
    with connection.cursor() as cursor, pytest.raises(DataError, match="timestamp too"):
        cursor.execute("SELECT %s::timestamptz", [text])
        cursor.fetchone()


def test_without_a_time_zone_a_timestamp_is_naive_in_the_sessions_zone():
    loader = timestamptz_loader(None)(TIMESTAMPTZ_OID, connection.connection)
    assert loader.load(b"2026-11-30 07:27:04.5+05:30") == datetime(2026, 11, 30, 7, 27, 4, 500000)
