from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from access.demo import demo_access_seed


class Command(BaseCommand):
    help = (
        "Demo JIT roles and the demo technician's eligibilities (development mode only; run after seed_demo). "
        "Running it again changes nothing."
    )

    def handle(self, *args, **options):
        try:
            roles = demo_access_seed()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            "JIT roles: " + ", ".join(r.name for r in roles) + ".\n"
            "tech@demo.example may request them in both organisations (My access); approver@demo.example approves.\n"
        )
