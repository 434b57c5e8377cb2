import secrets

import factory
from django.utils import timezone

from accounts.models import Role
from tests.accounts.factories import OrganizationFactory, PersonFactory, UserFactory
from validation import crypto
from validation.models import PersonAuthenticator


def technician_for(organization, **kwargs):
    return UserFactory(roles=[Role.TECHNICIAN], organizations=[organization], **kwargs)


class AuthenticatorFactory(factory.django.DjangoModelFactory):
    """A confirmed authenticator; the raw key is on ``.raw_key`` for computing codes."""

    class Meta:
        model = PersonAuthenticator

    person = factory.SubFactory(PersonFactory)
    raw_key = factory.LazyFunction(lambda: secrets.token_bytes(20))
    sealed_key = factory.LazyAttribute(lambda o: crypto.seal(o.raw_key))
    confirmed_at = factory.LazyFunction(timezone.now)

    @classmethod
    def _create(cls, model_class, *args, raw_key, **kwargs):
        obj = super()._create(model_class, *args, **kwargs)
        obj.raw_key = raw_key
        return obj


__all__ = ["AuthenticatorFactory", "OrganizationFactory", "PersonFactory", "technician_for"]
