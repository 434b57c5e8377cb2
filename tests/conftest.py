import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when /usr/bin/chromium is usable."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (install Debian's chromium: apt-get install -y chromium)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is not executable"
    return None


def _postgres_problem() -> str | None:
    from django.db import connection

    database = connection.settings_dict
    if connection.vendor != "postgresql":
        return f"DATABASE_URL must point at PostgreSQL (the suite is using {database['ENGINE']})"
    import psycopg

    try:
        # The maintenance database: the test database does not exist yet.
        psycopg.connect(
            dbname="postgres",
            host=database.get("HOST") or None,
            port=database.get("PORT") or None,
            user=database.get("USER") or None,
            password=database.get("PASSWORD") or None,
            connect_timeout=5,
        ).close()
    except psycopg.Error as exc:
        return f"PostgreSQL from DATABASE_URL is unreachable: {exc}"
    return None


def _redis_problem() -> str | None:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        return "REDIS_URL is not set"
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5).ping()
    except redis.RedisError as exc:
        return f"Redis at REDIS_URL does not answer PING: {exc}"
    return None


def ci_environment_problems() -> list[str]:
    """Everything CI needs that is missing. Locally these are optional (SQLite, no Redis,
    browser tests skipped); under CI=true each one would silently weaken the run."""
    return [p for p in (_postgres_problem(), _redis_problem(), chromium_missing_reason()) if p]


def pytest_sessionstart(session):
    if not running_in_ci():
        return
    problems = ci_environment_problems()
    if problems:
        pytest.exit(
            "CI=true but the test environment is incomplete:\n  - " + "\n  - ".join(problems),
            returncode=3,
        )


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and used-TOTP marks live in the cache; start each test clean."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True, scope="session")
def _audit_tables_flushable():
    """On PostgreSQL the audit tables' triggers refuse TRUNCATE, which is how a transactional
    test's flush empties every table. Tests flush them the way only the tables' owner can:
    triggers disabled inside the flush's own transaction (audit/migrations/0005)."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush
    append_only = ("audit_securityevent", "audit_chainlink", "audit_checkpoint")

    def sql_flush(self, style, tables, **kwargs):
        statements = original(self, style, tables, **kwargs)
        guarded = [self.quote_name(table) for table in append_only if table in tables]
        if not statements or not guarded:
            return statements
        return [
            *(f"ALTER TABLE {table} DISABLE TRIGGER USER;" for table in guarded),
            *statements,
            *(f"ALTER TABLE {table} ENABLE TRIGGER USER;" for table in guarded),
        ]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        yield


@pytest.fixture
def tasks_go_to_the_broker():
    """This process only enqueues (a real worker runs the tasks): eager execution off."""
    from config import celery_app

    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = eager
