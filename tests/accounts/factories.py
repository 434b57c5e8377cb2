import factory
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from accounts.models import Organization, Person, Role, User
from accounts.services import organization_assign_staff


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Client {n}")
    slug = factory.Sequence(lambda n: f"client-{n}")


class PersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Person

    organization = factory.SubFactory(OrganizationFactory)
    employee_id = factory.Sequence(lambda n: f"E{n:06d}")
    full_name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"person{n}@client.example")
    phone = factory.Sequence(lambda n: f"+1202555{n % 10000:04d}")
    department = "Finance"


class UserFactory(factory.django.DjangoModelFactory):
    """A staff user with a verified email. Pass ``roles=[Role.TECHNICIAN]``,
    ``organizations=[org]`` and ``totp_secret=...`` (or ``mfa=True``) as needed."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"staff{n}@msp.example")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def verified_email(self, create, extracted, **kwargs):
        if create:
            self.save()
            EmailAddress.objects.create(user=self, email=self.email, primary=True, verified=True)

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create and extracted:
            from django.contrib.auth.models import Group

            # get_or_create: transactional tests flush the groups the data migration made.
            self.groups.add(*(Group.objects.get_or_create(name=Role(r).value)[0] for r in extracted))

    @factory.post_generation
    def organizations(self, create, extracted, **kwargs):
        for organization in extracted or ():
            organization_assign_staff(actor=None, organization=organization, user=self)

    @factory.post_generation
    def mfa(self, create, extracted, **kwargs):
        """``mfa=True`` enrols TOTP with a fresh secret, kept on ``user.totp_secret``."""
        if create and extracted:
            self.totp_secret = generate_totp_secret()
            TOTP.activate(self, self.totp_secret)


PASSWORD = "correct horse battery staple"
