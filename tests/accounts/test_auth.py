import pytest
from django.urls import reverse

from accounts.backends import AuthenticationBackend, ModelBackend
from accounts.models import Role
from tests.accounts.factories import PASSWORD, OrganizationFactory, UserFactory
from tests.helpers import sign_in

pytestmark = pytest.mark.django_db


def test_user_without_authenticator_is_sent_to_enrol_before_any_page(client):
    user = UserFactory(roles=[Role.TECHNICIAN])
    sign_in(client, user, password=PASSWORD)
    for url in ["/", "/organisations/", "/people/?q=ab", "/admin/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == reverse("mfa_activate_totp")


def test_enrolled_user_needs_totp_step_before_dashboard(client):
    user = UserFactory(roles=[Role.TECHNICIAN], mfa=True)
    response = sign_in(client, user, password=PASSWORD)
    assert response["Location"] == reverse("mfa_authenticate")
    assert client.get("/").status_code == 302  # still anonymous
    sign_in(client, user, password=PASSWORD, secret=user.totp_secret)
    assert client.get("/").status_code == 200


def test_admin_cannot_be_reached_with_a_password_alone(client):
    admin = UserFactory(is_staff=True, is_superuser=True, mfa=True)
    response = client.get("/admin/")
    assert response.status_code == 302
    # The admin login is allauth's, which carries the MFA stage.
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    response = client.post("/admin/login/", {"username": admin.email, "password": PASSWORD})
    assert client.get("/admin/").status_code == 302
    sign_in(client, admin, password=PASSWORD)
    assert client.get("/admin/").status_code == 302
    sign_in(client, admin, password=PASSWORD, secret=admin.totp_secret)
    assert client.get("/admin/").status_code == 200


def test_session_key_rotates_after_mfa_step(client):
    user = UserFactory(mfa=True)
    client.get(reverse("account_login"))
    sign_in(client, user, password=PASSWORD)
    key_after_password = client.session.session_key
    sign_in(client, user, password=PASSWORD, secret=user.totp_secret)
    assert client.session.session_key != key_after_password


def test_self_signup_is_closed(client):
    response = client.post(
        reverse("account_signup"), {"email": "intruder@example.com", "password1": "x" * 20, "password2": "x" * 20}
    )
    from accounts.models import User

    assert not User.objects.filter(email="intruder@example.com").exists()
    assert response.status_code in (200, 302, 403)


def test_anonymous_is_sent_to_login(client):
    org = OrganizationFactory()
    response = client.get(reverse("organization_detail", args=[org.slug]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_a_person_has_no_login_path(client):
    from accounts.models import Person, User
    from tests.accounts.factories import PersonFactory

    person = PersonFactory(email="end.user@client.example")
    # A Person is not an account: no password field, no User row, and signing in with their email fails.
    assert not hasattr(person, "password")
    assert not any(f.name in ("password", "last_login") for f in Person._meta.get_fields())
    assert not User.objects.filter(email__iexact=person.email).exists()
    response = client.post("/accounts/login/", {"login": person.email, "password": "anything-at-all"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_sign_in_and_mfa_steps_are_recorded_as_security_events(client):
    from audit.models import SecurityEvent

    user = UserFactory(mfa=True)
    client.post("/accounts/login/", {"login": user.email, "password": "wrong password"})
    sign_in(client, user, password=PASSWORD)
    client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    sign_in(client, user, password=PASSWORD, secret=user.totp_secret)
    events = list(SecurityEvent.objects.order_by("id").values_list("event_type", flat=True))
    assert "auth.login_failed" in events
    assert "auth.mfa_failed" in events
    assert events[-1] == "auth.login_succeeded"
    failed = SecurityEvent.objects.get(event_type="auth.login_failed")
    assert "wrong password" not in str(failed.details)


@pytest.mark.django_db(transaction=True)  # allauth sends authenticator_added after a real commit
def test_totp_enrolment_is_recorded_and_rotates_the_session(client):
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    from audit.models import SecurityEvent

    user = UserFactory()
    sign_in(client, user, password=PASSWORD)
    # allauth asks for the password again before an authenticator is added.
    page = client.get("/accounts/2fa/totp/activate/")
    assert page["Location"].startswith("/accounts/reauthenticate/")
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = page.context["form"].secret
    key_before = client.session.session_key
    import time

    if 30 - time.time() % 30 < 3:
        time.sleep(3.5)
    code = format_hotp_value(hotp_value(secret, int(time.time()) // 30))
    response = client.post("/accounts/2fa/totp/activate/", {"code": code})
    assert response.status_code == 302
    assert client.session.session_key != key_before
    assert SecurityEvent.objects.filter(event_type="auth.mfa_enrolled", actor_id=user.pk).exists()
    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_the_backends_load_the_signed_in_user_as_django_does(django_assert_num_queries):
    user = UserFactory()
    gone = UserFactory(is_active=False)
    for backend in (ModelBackend(), AuthenticationBackend()):
        with django_assert_num_queries(1):
            loaded = backend.get_user(user.pk)
        assert loaded == user and loaded.email == user.email and loaded.password == user.password
        assert loaded._state.adding is False
        assert backend.get_user(gone.pk) is None  # inactive: may not sign in
        for impossible in (user.pk + 10_000, 0, -1, 2**63, "1"):
            assert backend.get_user(impossible) is None
