from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import DEMO_PASSWORD, DEMO_STAFF, demo_seed


class Command(BaseCommand):
    help = (
        "Load idempotent demo data (development mode only): two client organisations with "
        "300 people each, and one staff user per role. Running it again changes nothing."
    )

    def handle(self, *args, **options):
        try:
            users = demo_seed()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        port = self._port()
        self.stdout.write(self.style.SUCCESS(f"\nDemo data ready. Open http://127.0.0.1:{port}/\n"))
        self.stdout.write(f"Every demo login uses the password: {DEMO_PASSWORD}\n")
        for spec, user in zip(DEMO_STAFF, users, strict=True):
            roles = ", ".join(r.value for r in spec.roles) or ("superuser" if spec.superuser else "")
            mfa = "TOTP enrolled" if spec.enrol_mfa else "no authenticator yet: enrols at first sign-in"
            self.stdout.write(f"  {user.email:<24} {roles:<12} {mfa}")
        self.stdout.write(
            "\nMFA is mandatory. For an enrolled demo user, get the current 6-digit code with\n"
            "  .venv/bin/python manage.py demo_totp tech@demo.example\n"
            "(add --uri to print the otpauth:// link for a real authenticator app).\n"
            "newtech@demo.example shows the forced enrolment: scan the QR code with any authenticator app.\n"
            "SMS and e-mail go to the development outbox and this console.\n"
        )

    def _port(self) -> str:
        import os

        return os.environ.get("PORT", "8000") if settings.DEBUG else "8000"
