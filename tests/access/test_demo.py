import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from access.authorization import grant_allows
from access.models import Eligibility, Role
from accounts.models import Organization, User


@pytest.fixture
def seeded(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=None)
    call_command("seed_demo_access", stdout=None)


@pytest.mark.django_db
def test_demo_roles_and_eligibilities_once_and_no_standing_privilege(seeded):
    assert Role.objects.count() == 3 and Role.objects.filter(break_glass=True).count() == 1
    technician = User.objects.get(email="tech@demo.example")
    assert Eligibility.objects.filter(technician=technician).count() == 6
    call_command("seed_demo_access", stdout=None)
    assert Role.objects.count() == 3 and Eligibility.objects.count() == 6
    for organization in Organization.objects.all():
        assert not grant_allows(technician=technician, organization=organization, action="password_reset")


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_demo_access_refuses_production_mode():
    with pytest.raises(CommandError, match="development mode only"):
        call_command("seed_demo_access", stdout=None)
