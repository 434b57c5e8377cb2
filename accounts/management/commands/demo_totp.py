from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import demo_totp
from accounts.models import User


class Command(BaseCommand):
    help = "Print the current TOTP code of a demo staff user (development mode only)."

    def add_arguments(self, parser):
        parser.add_argument("email", help="the demo user's email, e.g. tech@demo.example")
        parser.add_argument("--uri", action="store_true", help="also print the otpauth:// URI for an authenticator app")

    def handle(self, *args, email, uri, **options):
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No staff user {email}")
        try:
            result = demo_totp(user)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        if result is None:
            raise CommandError(f"{email} has no authenticator yet; sign in once to enrol")
        code, otpauth = result
        self.stdout.write(code)
        if uri:
            self.stdout.write(otpauth)
