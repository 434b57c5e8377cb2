"""Small helpers shared by tests: computing TOTP codes and signing in through allauth."""

import time

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
