import pytest

from tests.validation.factories import OrganizationFactory, PersonFactory, technician_for


@pytest.fixture
def outbox(settings):
    """Texts go to the development outbox (the real transport used by `make run`)."""
    settings.SMS_DEV_OUTBOX = True


@pytest.fixture
def org(db):
    return OrganizationFactory()


@pytest.fixture
def person(org):
    return PersonFactory(organization=org)


@pytest.fixture
def technician(org):
    return technician_for(org)
