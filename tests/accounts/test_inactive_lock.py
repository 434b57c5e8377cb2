from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import Role, User
from audit.models import SecurityEvent
from tests.accounts.factories import PASSWORD, OrganizationFactory, UserFactory
from tests.helpers import sign_in

pytestmark = pytest.mark.django_db

DAYS = 45


def _age(user, *, days: float, last_login: bool = True) -> User:
    """Move the account's creation (and sign-in) ``days`` into the past."""
    then = timezone.now() - timedelta(days=days)
    User.objects.filter(pk=user.pk).update(date_joined=then, last_login=then if last_login else None)
    user.refresh_from_db()
    return user


def test_account_is_locked_at_45_days_without_sign_in_not_a_second_before():
    start = timezone.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False) as clock:
        user = UserFactory(roles=[Role.TECHNICIAN])
        User.objects.filter(pk=user.pk).update(last_login=start)
        clock.shift(timedelta(days=DAYS) - timedelta(seconds=1))
        assert services.staff_lock_inactive_due() == 0
        user.refresh_from_db()
        assert user.is_active and user.locked_at is None
        clock.shift(timedelta(seconds=1))
        assert services.staff_lock_inactive_due() == 1
        user.refresh_from_db()
        assert not user.is_active
        assert user.locked_at == start + timedelta(days=DAYS)
    event = SecurityEvent.objects.get(event_type="auth.staff_locked")
    assert event.actor_kind == "system"
    assert event.target_id == str(user.pk)
    assert event.details["days"] == DAYS
    assert event.details["never_signed_in"] is False


def test_never_used_account_counts_from_its_creation():
    start = timezone.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False) as clock:
        user = UserFactory()
        clock.shift(timedelta(days=DAYS) - timedelta(seconds=1))
        assert services.staff_lock_inactive_due() == 0
        clock.shift(timedelta(seconds=1))
        assert services.staff_lock_inactive_due() == 1
    user.refresh_from_db()
    assert user.is_locked
    assert SecurityEvent.objects.get(event_type="auth.staff_locked").details["never_signed_in"] is True


def test_a_sign_in_restarts_the_clock(client):
    start = timezone.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False) as clock:
        user = UserFactory(mfa=True)
        clock.shift(timedelta(days=30))
        sign_in(client, user, password=PASSWORD, secret=user.totp_secret)
        client.logout()
        clock.shift(timedelta(days=DAYS - 1))
        assert services.staff_lock_inactive_due() == 0
        clock.shift(timedelta(days=1))
        assert services.staff_lock_inactive_due() == 1


def test_the_setting_changes_the_period(settings):
    settings.STAFF_INACTIVE_LOCK_DAYS = 10
    user = _age(UserFactory(), days=10)
    assert services.staff_lock_inactive_due() == 1
    user.refresh_from_db()
    assert user.is_locked


def test_locked_user_is_emailed_with_who_can_unlock(django_capture_on_commit_callbacks):
    org = OrganizationFactory()
    admin = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org], full_name="Olga Admin")
    user = _age(UserFactory(roles=[Role.TECHNICIAN], organizations=[org]), days=DAYS + 3)
    with django_capture_on_commit_callbacks(execute=True):
        services.staff_lock_inactive_due()
    assert [m.to for m in mail.outbox] == [[user.email]]
    body = mail.outbox[0].body
    assert f"{DAYS} days" in body
    assert admin.email in body and "Olga Admin" in body


def test_sign_in_is_refused_with_a_clear_message_when_locked(client):
    user = _age(UserFactory(mfa=True), days=DAYS)
    services.staff_lock_inactive_due()
    response = sign_in(client, user, password=PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("account_inactive")
    page = client.get(response["Location"])
    assert "locked" in page.content.decode() and f"{DAYS} days without sign-in" in page.content.decode()
    assert client.get("/").status_code == 302  # not signed in
    assert "_auth_user_id" not in client.session


def test_existing_session_ends_when_the_account_is_locked(client):
    user = UserFactory(mfa=True)
    client.force_login(user)
    assert client.get("/").status_code == 200
    _age(user, days=DAYS)
    assert services.user_lock_inactive(user_id=user.pk)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_the_last_active_superuser_is_never_locked():
    first = _age(UserFactory(is_staff=True, is_superuser=True), days=DAYS + 10)
    second = _age(UserFactory(is_staff=True, is_superuser=True), days=DAYS + 10)
    assert services.staff_lock_inactive_due() == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert [first.is_locked, second.is_locked] == [True, False]
    assert second.is_active
    assert services.staff_lock_inactive_due() == 0


def test_a_superuser_is_locked_when_another_superuser_stays_active():
    UserFactory(is_staff=True, is_superuser=True)  # recent
    old = _age(UserFactory(is_staff=True, is_superuser=True), days=DAYS)
    assert services.staff_lock_inactive_due() == 1
    old.refresh_from_db()
    assert old.is_locked


def test_deactivated_accounts_are_not_locked():
    user = _age(UserFactory(), days=DAYS * 2)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert services.staff_lock_inactive_due() == 0
    user.refresh_from_db()
    assert user.locked_at is None


# --- Unlock -------------------------------------------------------------------------------


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def locked(org):
    user = _age(UserFactory(roles=[Role.TECHNICIAN], organizations=[org]), days=DAYS)
    assert services.user_lock_inactive(user_id=user.pk)
    user.refresh_from_db()
    mail.outbox.clear()
    return user


def test_org_admin_unlocks_with_a_reason_and_the_clock_restarts(org, locked, django_capture_on_commit_callbacks):
    start = timezone.now().replace(microsecond=0)  # before the admin joins: only the unlocked account falls due
    admin = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org])
    with time_machine.travel(start, tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            services.user_unlock(actor=admin, user=locked, reason="Back from parental leave")
        locked.refresh_from_db()
        assert locked.is_active and locked.locked_at is None and locked.unlocked_at == start
        clock.shift(timedelta(days=DAYS) - timedelta(seconds=1))
        assert services.staff_lock_inactive_due() == 0
        clock.shift(timedelta(seconds=1))
        assert services.staff_lock_inactive_due() == 1
    event = SecurityEvent.objects.get(event_type="auth.staff_unlocked")
    assert event.actor_id == admin.pk and event.details["reason"] == "Back from parental leave"
    assert mail.outbox[0].to == [locked.email]
    assert "unlocked" in mail.outbox[0].subject


@pytest.mark.parametrize("reason", ["", "   ", "abc", "x" * 201])
def test_unlock_needs_a_reason(org, locked, reason):
    admin = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org])
    with pytest.raises(services.UnlockError):
        services.user_unlock(actor=admin, user=locked, reason=reason)
    locked.refresh_from_db()
    assert locked.is_locked and not locked.is_active
    assert not SecurityEvent.objects.filter(event_type="auth.staff_unlocked").exists()


def test_nobody_unlocks_their_own_account(org):
    admin = _age(UserFactory(roles=[Role.ORG_ADMIN], organizations=[org]), days=DAYS)
    services.user_lock_inactive(user_id=admin.pk)
    admin.refresh_from_db()
    with pytest.raises(services.UnlockError, match="own account"):
        services.user_unlock(actor=admin, user=admin, reason="I need it back")
    admin.refresh_from_db()
    assert admin.is_locked
    assert SecurityEvent.objects.filter(event_type="auth.staff_unlock_refused", actor_id=admin.pk).count() == 1


def test_org_admin_of_another_organisation_cannot_unlock(locked):
    outsider = UserFactory(roles=[Role.ORG_ADMIN], organizations=[OrganizationFactory()])
    with pytest.raises(services.UnlockError):
        services.user_unlock(actor=outsider, user=locked, reason="Looks fine to me")
    locked.refresh_from_db()
    assert locked.is_locked


def test_a_technician_of_the_organisation_cannot_unlock(org, locked):
    colleague = UserFactory(roles=[Role.TECHNICIAN, Role.APPROVER], organizations=[org])
    with pytest.raises(services.UnlockError):
        services.user_unlock(actor=colleague, user=locked, reason="Looks fine to me")


def test_only_a_superuser_unlocks_a_superuser(org):
    UserFactory(is_staff=True, is_superuser=True)  # keeps one active superuser
    root = _age(UserFactory(is_staff=True, is_superuser=True, organizations=[org]), days=DAYS)
    assert services.user_lock_inactive(user_id=root.pk)
    admin = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org])
    with pytest.raises(services.UnlockError):
        services.user_unlock(actor=admin, user=root, reason="Needed for the migration")
    other_root = User.objects.get(is_superuser=True, is_active=True)
    services.user_unlock(actor=other_root, user=root, reason="Needed for the migration")
    root.refresh_from_db()
    assert root.is_active and not root.is_locked


def test_unlocking_an_account_that_is_not_locked_is_refused(org):
    admin = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org])
    user = UserFactory(roles=[Role.TECHNICIAN], organizations=[org])
    with pytest.raises(services.UnlockError, match="not locked"):
        services.user_unlock(actor=admin, user=user, reason="Just in case")


def test_the_admin_cannot_reactivate_a_locked_account_without_the_unlock(locked):
    root = UserFactory(is_staff=True, is_superuser=True)
    with pytest.raises(ValueError, match="unlock"):
        services.user_update(actor=root, user=locked, data={"is_active": True})
    locked.refresh_from_db()
    assert locked.is_locked and not locked.is_active


def test_superuser_unlocks_through_the_admin_action_with_a_reason(client, locked):
    root = UserFactory(is_staff=True, is_superuser=True, mfa=True)
    client.force_login(root)
    url = reverse("admin:accounts_user_changelist")
    data = {"action": "unlock_accounts", "_selected_action": [locked.pk]}
    page = client.post(url, data)
    assert page.status_code == 200 and b"Reason" in page.content
    locked.refresh_from_db()
    assert locked.is_locked  # nothing yet: the reason comes first
    response = client.post(url, {**data, "confirmed": "yes", "reason": "ab"})
    assert response.status_code == 200  # too short: asked again
    locked.refresh_from_db()
    assert locked.is_locked
    response = client.post(url, {**data, "confirmed": "yes", "reason": "Rejoined the service desk"})
    assert response.status_code == 302
    locked.refresh_from_db()
    assert locked.is_active and not locked.is_locked
    event = SecurityEvent.objects.get(event_type="auth.staff_unlocked")
    assert event.actor_id == root.pk and event.details["reason"] == "Rejoined the service desk"
