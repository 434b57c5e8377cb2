from django.core.management.base import BaseCommand, CommandError

from audit.retention import RetentionError, events_retention_apply


class Command(BaseCommand):
    help = (
        "Drop security events older than --older-than DAYS: the one way events leave the log. "
        "Verifies the whole chain first and refuses if it does not verify; drops only the oldest "
        "part of the chain (never the last event) and leaves a signed retention checkpoint, so "
        "audit_verify still passes. Refuses fewer days than AUDIT_RETENTION_MIN_DAYS. On "
        "PostgreSQL run it as the tables' owner (the role that runs migrations)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS", help="Age in days.")
        parser.add_argument("--dry-run", action="store_true", help="Only say how many events would go.")

    def handle(self, *args, older_than, dry_run, **options):
        try:
            result = events_retention_apply(older_than_days=older_than, dry_run=dry_run)
        except RetentionError as exc:
            raise CommandError(str(exc)) from None
        cutoff = f"{result.cutoff:%Y-%m-%d %H:%M} UTC"
        if result.through_sequence is None:
            self.stdout.write(f"Nothing to drop: no event recorded before {cutoff} can go.")
        elif dry_run:
            self.stdout.write(f"Would drop {result.dropped:,} events (sequence up to {result.through_sequence}).")
        else:
            self.stdout.write(
                f"Dropped {result.dropped:,} events recorded before {cutoff} (sequence up to "
                f"{result.through_sequence}); {result.checkpoints} retention checkpoint(s) written."
            )
