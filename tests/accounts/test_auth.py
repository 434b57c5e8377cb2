import pytest
from django.urls import reverse

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
