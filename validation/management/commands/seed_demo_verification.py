import os

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from validation.demo import demo_authenticators_seed, demo_policies_seed


class Command(BaseCommand):
    help = (
        "Give a few demo people an enrolled authenticator (development mode only; run after seed_demo). "
        "Running it again changes nothing."
    )

    def handle(self, *args, **options):
        try:
            people = demo_authenticators_seed()
            organizations = demo_policies_seed()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        port = os.environ.get("PORT", "8000")
        names = ", ".join(f"{p.full_name} ({p.employee_id}, {p.organization.slug})" for p in people)
        self.stdout.write(
            f"People with an enrolled authenticator: {names}.\n"
            "The code their authenticator shows now (the caller reads it to the technician):\n"
            "  .venv/bin/python manage.py demo_person_totp ACM00002\n"
            f"Texts to people go to the development outbox: http://127.0.0.1:{port}/dev/outbox/\n"
            "(open it as the phone; its Reply link answers an SMS-reply text).\n"
            f'"Other" requests may also use SMS reply and email code in: '
            f"{', '.join(o.name for o in organizations) or 'no organisation'}.\n"
            "An MFA reset (and anything for a privileged person) also needs a manager or peer approval:\n"
            "press 'Ask manager ... to approve' on the verification page; the manager's link and identity\n"
            "code land in the same outbox. ACM00001/GLO00001 (the CEOs) have no manager: ask a peer.\n"
        )
