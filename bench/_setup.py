"""Shared start-up for benchmarks: a PostgreSQL database from DATABASE_URL, created and
migrated if needed, and Django configured with the test settings (production-mode
settings with test credentials, so nothing here needs secrets)."""

from __future__ import annotations

import os
import sys
from urllib.parse import unquote, urlsplit


def postgres_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must point at PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/bench_search")
    return url


def create_database_if_missing(url: str) -> None:
    """CREATE DATABASE through the server's maintenance database, the way createdb does."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    params = {
        "host": parts.hostname,
        "port": parts.port,
        "user": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def setup_django() -> None:
    """Create and migrate the DATABASE_URL database, then return with Django ready."""
    url = postgres_database_url()
    create_database_if_missing(url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    os.environ.setdefault("PORTAL_VAR_DIR", "/tmp/portal-bench")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
