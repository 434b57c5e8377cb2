"""The live view's written-out read (``selectors.verification_get_for_user``) gives what
``select_related`` and ``prefetch_related`` gave: the same instances, the same values, the
same relations, and no query later for anything it loaded (a missing row included)."""

from datetime import timedelta

import pytest
from django.db.models import Model
from django.http import Http404
from django.utils import timezone

from tests.accounts.factories import OrganizationFactory, PersonFactory
from tests.validation.factories import technician_for
from validation import selectors
from validation.models import Challenge, PersonAuthenticator, PersonVerificationState, VerificationRequest


def _orm_read(pk: int) -> VerificationRequest:
    return (
        VerificationRequest.objects.select_related(
            "organization",
            "technician",
            "person__organization",
            "person__manager",
            "person__authenticator",
            "person__verification_state",
        )
        .prefetch_related("challenges")
        .get(pk=pk)
    )


def _fields(instance: Model | None) -> dict | None:
    if instance is None:
        return None
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def _request(org, person, technician, **kwargs) -> VerificationRequest:
    now = timezone.now()
    return VerificationRequest.objects.create(
        organization=org,
        person=person,
        technician=technician,
        action="password_reset",
        ticket_reference="INC-7",
        expires_at=now + timedelta(minutes=10),
        policy_snapshot={"allowed": ["sms_code"], "count": 1, "required_kinds": []},
        **kwargs,
    )


@pytest.fixture
def full(org):
    """A request whose person has a manager, an authenticator and a lock state, with two challenges."""
    manager = PersonFactory(organization=org)
    person = PersonFactory(organization=org, manager=manager, privileged=True)
    PersonAuthenticator.objects.create(person=person, sealed_key="k", confirmed_at=timezone.now(), last_t=7)
    PersonVerificationState.objects.create(person=person, consecutive_failures=2)
    technician = technician_for(org)
    verification = _request(org, person, technician)
    expires = timezone.now() + timedelta(minutes=5)
    for method in ("sms_code", "push"):
        Challenge.objects.create(request=verification, method=method, destination_masked="•••12", expires_at=expires)
    return verification, technician


@pytest.mark.django_db
def test_the_read_equals_the_orms(full, django_assert_num_queries):
    verification, technician = full
    expected = _orm_read(verification.pk)
    with django_assert_num_queries(2):  # the user's organisations; the joined row with the challenges
        got = selectors.verification_get_for_user(user=technician, pk=verification.pk)
    with django_assert_num_queries(0):
        person = got.person
        pairs = [
            (got, expected),
            (got.organization, expected.organization),
            (got.technician, expected.technician),
            (person, expected.person),
            (person.organization, expected.person.organization),
            (person.manager, expected.person.manager),
            (person.authenticator, expected.person.authenticator),
            (person.verification_state, expected.person.verification_state),
        ]
        for mine, theirs in pairs:
            assert type(mine) is type(theirs)
            assert _fields(mine) == _fields(theirs)
            assert mine._state.adding is False and mine._state.db == "default"
        assert [_fields(c) for c in got.challenges.all()] == [_fields(c) for c in expected.challenges.all()]
        assert all(c.request is got for c in got.challenges.all())
        assert person.authenticator.person is person and person.verification_state.person is person
        assert got.policy_snapshot == expected.policy_snapshot  # JSON decoded, not text
        assert got.created_at.tzinfo is not None


@pytest.mark.django_db
def test_what_the_person_lacks_is_known_missing_without_a_query(org, django_assert_num_queries):
    person = PersonFactory(organization=org)
    technician = technician_for(org)
    verification = _request(org, person, technician)
    got = selectors.verification_get_for_user(user=technician, pk=verification.pk)
    with django_assert_num_queries(0):
        assert got.person.manager is None
        for name in ("authenticator", "verification_state"):
            with pytest.raises(getattr(type(got.person), name).RelatedObjectDoesNotExist):
                getattr(got.person, name)
        assert list(got.challenges.all()) == []
        assert selectors.person_lock_reason(got.person) is None


@pytest.mark.django_db
def test_another_organisations_request_and_impossible_keys_are_404(full, org):
    verification, technician = full
    stranger = technician_for(OrganizationFactory())
    with pytest.raises(Http404):
        selectors.verification_get_for_user(user=stranger, pk=verification.pk)
    for pk in (0, -1, 2**63, 10**30):
        with pytest.raises(Http404):
            selectors.verification_get_for_user(user=technician, pk=pk)


@pytest.mark.django_db
def test_a_filter_on_the_read_challenges_stays_within_the_request(full, org):
    """The prefetched challenges answer ``all()`` without a query; anything chained on them
    still asks only for this request's rows (never another organisation's)."""
    verification, technician = full
    other_org = OrganizationFactory()
    other = _request(other_org, PersonFactory(organization=other_org), technician_for(other_org))
    Challenge.objects.create(
        request=other, method="sms_code", destination_masked="•••99", expires_at=timezone.now() + timedelta(minutes=5)
    )
    got = selectors.verification_get_for_user(user=technician, pk=verification.pk)
    assert set(got.challenges.filter(method="sms_code").values_list("request_id", flat=True)) == {verification.pk}
    assert set(got.challenges.values_list("request_id", flat=True)) == {verification.pk}


@pytest.mark.django_db
def test_the_challenge_and_version_reads_are_scoped_and_refuse_impossible_keys(full):
    verification, technician = full
    mine = verification.challenges.first()
    got = selectors.challenge_scoped_for_user(user=technician, pk=verification.pk, challenge_pk=mine.pk)
    assert got == mine
    assert got.request == verification  # the bare request row came with it: no further query
    assert got.request.status == verification.status
    other = _request(verification.organization, verification.person, technician)
    for pk in (mine.pk, 0, 2**63, 10**30):  # another request's challenge, impossible keys
        with pytest.raises(Http404):
            selectors.challenge_scoped_for_user(user=technician, pk=other.pk, challenge_pk=pk)
    for pk in (0, 2**63, 10**30):  # an impossible request key with a real challenge
        with pytest.raises(Http404):
            selectors.challenge_scoped_for_user(user=technician, pk=pk, challenge_pk=mine.pk)
    outsider = technician_for(OrganizationFactory())  # the right pair, another organisation's user
    with pytest.raises(Http404):
        selectors.challenge_scoped_for_user(user=outsider, pk=verification.pk, challenge_pk=mine.pk)
    assert selectors.verification_version_for_user(user=technician, pk=verification.pk) == verification.version
    stranger = technician_for(OrganizationFactory())
    for user, pk in ((stranger, verification.pk), (technician, 2**63), (technician, 0)):
        with pytest.raises(Http404):
            selectors.verification_version_for_user(user=user, pk=pk)
