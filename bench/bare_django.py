"""The yardstick: how fast this machine serves a bare Django page, right now.

Issue #4 gives its targets for "this 2-core machine" beside one reference measured on the
same machine kind: "a bare Django 5.2 page that checks a session and reads one row serves
600-850 requests per second here". Machines of this kind differ, and one machine's speed
drifts during a day by more than a half on identical work (docs/benchmarks.md), so a round
trip figure means little without the machine's speed beside it. This is that page: the
settings ``django-admin startproject`` writes (its apps and middleware, sessions in the
database), a view that checks the session's user is signed in and reads one row through the
ORM, PostgreSQL over a persistent connection, DEBUG off; served by gunicorn's sync workers to
32 clients, one connection per request (HTTP/1.0, as sync workers serve them), once with one
worker (gunicorn's default) and once with four (as bench/verification.py serves the portal):
the issue does not say which it measured.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_verification \\
    .venv/bin/python bench/bare_django.py

It uses a database of its own (the name in DATABASE_URL with ``_bare`` added).
bench/verification.py runs both before its levels and prints them above its own.
Numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _database_url() -> str:
    from bench._setup import postgres_database_url

    parts = urlsplit(postgres_database_url())
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_bare"))


def _configure() -> None:
    """The settings ``django-admin startproject`` writes (its apps and middleware, sessions in
    the database), with PostgreSQL over a persistent connection and DEBUG off."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    parts = urlsplit(os.environ["BARE_DATABASE_URL"])
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bare-django-" + "k" * 50,
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
        ],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": parts.path.lstrip("/"),
                "USER": parts.username or "",
                "PASSWORD": parts.password or "",
                "HOST": parts.hostname or "",
                "PORT": parts.port or "",
                "CONN_MAX_AGE": None,
            }
        },
        STATIC_URL="static/",
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()


def page(request):
    """Check the session (a signed-in user), read one row."""
    from django.contrib.auth.models import Group
    from django.http import HttpResponse, HttpResponseForbidden

    if not request.user.is_authenticated:
        return HttpResponseForbidden("not signed in")
    group = Group.objects.get(name="bare")
    return HttpResponse(f"Hello, {request.user.username} of {group.name}.")


def _urlpatterns():
    from django.urls import path

    return [path("", page)]


def __getattr__(name: str):  # ROOT_URLCONF's urlpatterns, built once Django is set up
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


_handler = None


def application(environ, start_response):
    """gunicorn's entry point: the WSGI handler, made on the first request."""
    global _handler
    if _handler is None:
        _configure()
        from django.core.wsgi import get_wsgi_application

        _handler = get_wsgi_application()
    return _handler(environ, start_response)


def _setup() -> None:
    """Migrate the bare project's database, make its one user and a session; print the key."""
    _configure()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    user = User.objects.filter(username="bare").first() or User.objects.create_user("bare")
    Group.objects.get_or_create(name="bare")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    print(session.session_key)


async def _get(port: int, cookie: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nCookie: sessionid={cookie}\r\n\r\n".encode())
        raw = await reader.read()
    finally:
        writer.close()
    return int(raw.split(b" ", 2)[1])


async def _drive(port: int, cookie: str, requests: int, concurrency: int) -> list[int]:
    statuses: list[int] = []
    left = [requests]

    async def client() -> None:
        while left[0] > 0:
            left[0] -= 1
            statuses.append(await _get(port, cookie))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return statuses


def measure(*, port: int = 8912, requests: int = 4000, concurrency: int = 32, workers: int = 4) -> tuple[float, float]:
    """(requests per second, CPU ms of gunicorn per request) of the bare page, served anew."""
    from bench._setup import create_database_if_missing
    from bench.verification import cpu_seconds, start_process, stop_process, wait_http

    url = _database_url()
    create_database_if_missing(url)
    env = {**os.environ, "BARE_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    cookie = subprocess.run(
        [sys.executable, __file__, "--setup"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    logs = Path(os.environ.get("PORTAL_VAR_DIR", "/tmp/portal-bench-verification"))
    logs.mkdir(parents=True, exist_ok=True)
    web = start_process(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "bench.bare_django:application",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            "--worker-class=sync",
            "--log-level=warning",
        ],
        env,
        logs / "gunicorn-bare.log",
    )
    loop = asyncio.new_event_loop()
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        loop.run_until_complete(_drive(port, cookie, workers * 50, concurrency))  # warm-up
        cpu = cpu_seconds(web.pid)
        began = time.perf_counter()
        statuses = loop.run_until_complete(_drive(port, cookie, requests, concurrency))
        elapsed = time.perf_counter() - began
        cpu_ms = (cpu_seconds(web.pid) - cpu) * 1000 / requests
    finally:
        loop.close()
        stop_process(web)
    failed = sum(status != 200 for status in statuses)
    if failed:
        sys.exit(f"bare page: {failed} of {requests} requests failed")
    return requests / elapsed, cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000, help="requests timed (default 4000)")
    parser.add_argument("--concurrency", type=int, default=32, help="clients (default 32)")
    parser.add_argument("--workers", default="1,4", help="gunicorn worker counts to measure (default 1,4)")
    parser.add_argument("--port", type=int, default=8912)
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        _setup()
        return
    for workers in [int(w) for w in args.workers.split(",")]:
        rate, cpu_ms = measure(port=args.port, requests=args.requests, concurrency=args.concurrency, workers=workers)
        print(yardstick_line(rate, cpu_ms, workers=workers, concurrency=args.concurrency))


def yardstick_line(rate: float, cpu_ms: float, *, workers: int, concurrency: int = 32) -> str:
    """The issue does not say how many workers served its bare page: gunicorn's default is
    one, the portal's benchmark runs four."""
    return (
        f"yardstick: a bare Django page (startproject settings, a signed-in session, one row), gunicorn "
        f"{workers} worker{'s' if workers != 1 else ''}, {concurrency} clients: {rate:.0f} requests per second, "
        f"CPU {cpu_ms:.2f} ms a request (issue #4 measured 600-850 a second on this machine kind)"
    )


if __name__ == "__main__":
    main()
