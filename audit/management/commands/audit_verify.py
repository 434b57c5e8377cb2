from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.verify import chain_verify


class Command(BaseCommand):
    help = (
        "Verify the security event log: recompute every event's HMAC in chain order, check each "
        "link, look for gaps in the sequence numbers and for a prefix dropped without a signed "
        "retention checkpoint, check every checkpoint's Ed25519 signature, and compare the chain "
        "with the latest checkpoint to notice a tail cut off since then. Prints the problems in "
        "chain order and exits with status 1 if there is any; 0 when the log is intact."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoint-file",
            default=settings.AUDIT_CHECKPOINT_FILE,
            help="Also check the checkpoint copies in this JSON-lines file (default: AUDIT_CHECKPOINT_FILE). "
            "Use a copy kept away from the database server.",
        )
        parser.add_argument("--max-problems", type=int, default=20, help="Problems to list (all are counted).")
        parser.add_argument(
            "--jobs",
            type=int,
            default=1,
            help="Processes that walk parts of the chain at once (default 1; up to the CPU count helps).",
        )

    def handle(self, *args, checkpoint_file, max_problems, jobs, **options):
        report = chain_verify(checkpoint_file=checkpoint_file or None, max_problems=max_problems, jobs=jobs)
        span = f" (sequence {report.first_sequence}-{report.last_sequence})" if report.events else ""
        self.stdout.write(
            f"Checked {report.events:,} events{span} and {report.checkpoints:,} checkpoints in {report.seconds:.1f} s."
        )
        if report.events:
            self.stdout.write(f"Head: sequence {report.last_sequence}, hash {report.head_hash}")
        latest = report.latest_checkpoint
        if latest is not None:
            self.stdout.write(f"Latest checkpoint: sequence {latest['sequence']} at {latest['created_at']}")
        for note in report.notes:
            self.stdout.write(f"Note: {note}")
        if report.ok:
            self.stdout.write(self.style.SUCCESS("OK: the event log is intact."))
            return
        for problem in report.problems:
            self.stderr.write(f"[{problem.kind}] {problem.message}")
        more = report.problem_count - len(report.problems)
        if more:
            self.stderr.write(f"... and {more} more")
        raise CommandError(f"the event log does not verify: {report.problem_count} problem(s)", returncode=1)
