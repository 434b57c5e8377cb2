import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from accounts.models import Person
from tests.validation.helpers import totp_code
from validation import crypto
from validation.demo import DEMO_ENROLLED
from validation.models import PersonAuthenticator


@pytest.fixture
def seeded(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=None)
    call_command("seed_demo_verification", stdout=None)


@pytest.mark.django_db
def test_demo_people_get_authenticators_once(seeded):
    enrolled = PersonAuthenticator.objects.filter(confirmed_at__isnull=False)
    assert set(enrolled.values_list("person__employee_id", flat=True)) == set(DEMO_ENROLLED)
    keys = list(enrolled.order_by("pk").values_list("sealed_key", flat=True))
    call_command("seed_demo_verification", stdout=None)
    assert list(enrolled.order_by("pk").values_list("sealed_key", flat=True)) == keys


@pytest.mark.django_db
def test_demo_person_totp_prints_the_current_code(seeded, capsys):
    person = Person.objects.get(employee_id="ACM00002")
    key = crypto.unseal(person.authenticator.sealed_key)
    with time_machine.travel(timezone.now().replace(second=5, microsecond=0), tick=False):
        # A fixed instant mid-step: the command and the check cannot straddle a step boundary.
        call_command("demo_person_totp", "ACM00002")
        assert capsys.readouterr().out.strip() == totp_code(key)
    with pytest.raises(CommandError, match="no enrolled authenticator"):
        call_command("demo_person_totp", "ACM00099")


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_demo_verification_commands_refuse_production_mode():
    with pytest.raises(CommandError, match="development mode only"):
        call_command("seed_demo_verification", stdout=None)


@pytest.mark.django_db
def test_demo_people_with_an_authenticator_have_a_manager_who_can_approve(seeded):
    from validation.channels.approval import ManagerApprovalChannel

    channel = ManagerApprovalChannel()
    for person in Person.objects.filter(employee_id__in=DEMO_ENROLLED).select_related("manager"):
        if person.manager is None:  # the CEOs: the technician names a peer
            assert "name a peer" in channel.unavailable_reason(person)
        else:
            assert person.manager.phone and channel.unavailable_reason(person) is None
    with_manager = Person.objects.filter(manager__isnull=False)
    assert with_manager.count() >= Person.objects.count() - 2
    assert not with_manager.filter(manager__phone="").exists()
