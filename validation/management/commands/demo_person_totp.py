from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Person
from validation.demo import demo_person_code


class Command(BaseCommand):
    help = "Print the code a demo person's authenticator shows now (development mode only)."

    def add_arguments(self, parser):
        parser.add_argument("employee_id", help="the person's employee id, e.g. ACM00002")
        parser.add_argument("--organization", help="organisation slug, when the id is not unique")

    def handle(self, *args, employee_id, organization, **options):
        people = Person.objects.filter(employee_id=employee_id)
        if organization:
            people = people.filter(organization__slug=organization)
        if people.count() != 1:
            raise CommandError(f"No single person with employee id {employee_id}; add --organization")
        try:
            code = demo_person_code(people.get())
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        if code is None:
            raise CommandError(f"{employee_id} has no enrolled authenticator (send an enrolment link from the portal)")
        self.stdout.write(code)
