"""The demo data behind `make run`: idempotent, complete, and development-only."""

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from accounts.demo import DEMO_PASSWORD, DEMO_STAFF, demo_people_csv
from accounts.models import Organization, Person, User
from audit.models import SecurityEvent
from tests.helpers import totp_now


@pytest.fixture
def seeded(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=None)


@pytest.mark.django_db
def test_seed_creates_two_organisations_with_managers_and_privileged_people(seeded):
    for org in Organization.objects.all():
        people = Person.objects.filter(organization=org)
        assert people.count() == 300
        assert people.filter(manager__isnull=False).count() == 299
        assert 1 <= people.filter(privileged=True).count() < 30
    assert set(Organization.objects.values_list("slug", flat=True)) == {"acme", "globex"}


@pytest.mark.django_db
def test_seed_creates_one_staff_user_per_role_with_totp(seeded):
    for spec in DEMO_STAFF:
        user = User.objects.get(email=spec.email)
        assert user.check_password(DEMO_PASSWORD)
        assert user.is_superuser == spec.superuser
        assert {g.name for g in user.groups.all()} == {r.value for r in spec.roles}
        enrolled = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
        assert enrolled == spec.enrol_mfa


@pytest.mark.django_db
def test_seeding_twice_changes_nothing(seeded):
    counts = (Person.objects.count(), User.objects.count(), Authenticator.objects.count())
    events = SecurityEvent.objects.count()
    call_command("seed_demo", stdout=None)
    assert (Person.objects.count(), User.objects.count(), Authenticator.objects.count()) == counts
    assert SecurityEvent.objects.filter(event_type="directory.person_contact_changed").count() == 0
    assert SecurityEvent.objects.count() - events <= 2  # one import summary per organisation at most


@pytest.mark.django_db
def test_demo_totp_prints_the_code_an_authenticator_would_show(seeded, capsys):
    from allauth.mfa.utils import decrypt

    user = User.objects.get(email="tech@demo.example")
    secret = decrypt(Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP).data["secret"])
    with time_machine.travel(timezone.now().replace(second=5, microsecond=0), tick=False):
        # A fixed instant mid-step: the command and the check cannot straddle a step boundary.
        call_command("demo_totp", "tech@demo.example")
        assert capsys.readouterr().out.strip() == totp_now(secret)


@pytest.mark.django_db
def test_demo_totp_for_a_user_without_authenticator_fails_clearly(seeded):
    with pytest.raises(CommandError, match="no authenticator yet"):
        call_command("demo_totp", "newtech@demo.example")


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_demo_commands_refuse_production_mode():
    with pytest.raises(CommandError, match="development mode only"):
        call_command("seed_demo", stdout=None)
    assert not Organization.objects.exists()
    with pytest.raises(CommandError):
        call_command("demo_totp", "tech@demo.example")


def test_demo_directory_is_deterministic_and_valid_csv():
    assert demo_people_csv("acme") == demo_people_csv("acme")
    assert demo_people_csv("acme").count("\n") == 301
