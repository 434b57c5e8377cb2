from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from audit.models import SecurityEvent
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_idle_session_ends_after_30_minutes(client):
    user = UserFactory(mfa=True)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        client.force_login(user)
        assert client.get("/").status_code == 200
        clock.shift(timedelta(minutes=29))
        assert client.get("/").status_code == 200  # activity renews the idle window
        clock.shift(timedelta(minutes=31))
        response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_active_session_ends_12_hours_after_sign_in(client):
    user = UserFactory(mfa=True)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        client.force_login(user)
        for _ in range(11 * 3):  # a request every 20 minutes for 11 hours
            clock.shift(timedelta(minutes=20))
            assert client.get("/").status_code == 200
        for minutes in (20, 20, 19):  # 11 h 59 min after sign-in
            clock.shift(timedelta(minutes=minutes))
            assert client.get("/").status_code == 200
        clock.shift(timedelta(minutes=1))
        response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert SecurityEvent.objects.filter(event_type="auth.session_expired", actor_id=user.pk).count() == 1
    assert client.get("/").status_code == 302


def test_session_cookie_is_http_only(client):
    user = UserFactory(mfa=True)
    client.force_login(user)
    client.get("/")
    assert client.cookies["sessionid"]["httponly"]


def test_production_cookie_flags(settings):
    # settings_test relaxes these for the plain-HTTP test server; production mode sets them.
    import os
    import subprocess
    import sys

    code = (
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_NAME)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "false"}
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup();" + code], env=env, capture_output=True, text=True
    )
    assert out.stdout.split() == ["True", "True", "True", "__Host-sessionid"], out.stderr


def test_idle_limit_is_enforced_from_the_session_itself_and_recorded(client):
    """Whatever the session store's own expiry (a cache keeps entries by its own clock)."""
    user = UserFactory(mfa=True)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client.force_login(user)
        assert client.get("/").status_code == 200
        clock.shift(timedelta(minutes=30))
        assert client.get("/").status_code == 302
    event = SecurityEvent.objects.get(event_type="auth.session_expired")
    assert event.details == {"limit": "idle"} and event.actor_id == user.pk
