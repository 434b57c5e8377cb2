"""Small helpers shared by tests: computing TOTP codes, signing in through allauth, and running
code against the schema of an earlier migration."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value


def totp_now(secret: str, *, period: int = 30) -> str:
    """The current TOTP code for ``secret``, waiting out the last seconds of a step so the
    code is still valid when the server checks it."""
    if period - (time.time() % period) < 3:
        time.sleep(period - (time.time() % period) + 0.2)
    return format_hotp_value(hotp_value(secret, int(time.time()) // period))


def sign_in(client, user, *, password, secret=None):
    """Password step, then (if ``secret``) the TOTP step. Returns the last response."""
    response = client.post("/accounts/login/", {"login": user.email, "password": password})
    if secret is not None:
        response = client.post("/accounts/2fa/authenticate/", {"code": totp_now(secret)})
    return response


@contextmanager
def migrated_back_to(*targets: tuple[str, str]) -> Iterator:
    """The database migrated back to ``targets`` (app label, migration name) for the block,
    which gets that state's apps (its historical models); then forward again to the latest
    migrations, running the data migrations in between on what the block wrote. Needs a
    ``django_db(transaction=True)`` test."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate(list(targets))
    try:
        yield executor.loader.project_state(list(targets)).apps
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
