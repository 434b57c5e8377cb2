"""A real Celery worker for the integration tests: a `celery -A config worker` process on
the test database pytest-django created and on REDIS_URL. Locally these tests skip without
PostgreSQL and Redis; under CI=true tests/conftest.py fails the run instead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from tests.conftest import running_in_ci

ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 30


def missing_services() -> str | None:
    if not os.environ.get("REDIS_URL"):
        return "REDIS_URL is not set"
    if connection.vendor != "postgresql":
        return "DATABASE_URL does not point at PostgreSQL"
    return None


INTEGRATION_MARKS = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not running_in_ci() and missing_services() is not None,
        reason=f"the Celery integration test needs Redis and PostgreSQL: {missing_services()}",
    ),
]


def worker_database_url() -> str:
    """The database pytest-django created, which the worker must use too."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "localhost"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{credentials}{'@' if credentials else ''}{host}{port}/{quote(db['NAME'], safe='')}"


@contextmanager
def running_worker(tmp_path: Path, *, name: str, extra_env: dict[str, str] | None = None):
    """Start the worker, wait until it is ready, yield it (``.log_path`` holds its log),
    and always stop it: a warm shutdown, then a kill of its process group."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DATABASE_URL": worker_database_url(),
        "DATABASE_CONN_MAX_AGE": "0",
        "REDIS_URL": os.environ["REDIS_URL"],
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    env.pop("CELERY_BROKER_URL", None)
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            # The deployed pool (CELERY_WORKER_POOL: threads), one thread: tasks in the order sent.
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency=1", "--loglevel=INFO"]
            + ["--without-gossip", "--without-mingle", "--without-heartbeat", f"--hostname={name}-{os.getpid()}@%h"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker.log_path = log_path
    try:
        deadline = time.monotonic() + START_SECONDS
        while "ready." not in log_path.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.1)
        yield worker
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=5)
