from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import pluralize

from accounts.imports import ImportFileError, check_upload_size, decode_upload, people_import
from accounts.models import Organization

PROGRESS_MIN_ROWS = 10_000
PROGRESS_STEP_PERCENT = 10


class Command(BaseCommand):
    help = (
        "Import an organisation's people from a UTF-8 CSV file with the header columns employee_id, "
        "full_name, email, phone, department, manager_employee_id, privileged (any order). People are "
        "matched by employee id; people not in the file are left alone. A file with any bad row imports "
        "nothing: every problem is printed as 'row N: field: message' and the exit status is 1. "
        "Progress goes to stderr for files of 10,000 rows or more."
    )

    def add_arguments(self, parser):
        parser.add_argument("org_slug", help="Slug of the organisation to import into.")
        parser.add_argument("csv_path", type=Path, help="Path of the CSV file.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check the file and print what would change; write nothing."
        )

    def handle(self, *args, org_slug: str, csv_path: Path, dry_run: bool, **options):
        organization = Organization.objects.filter(slug=org_slug).first()
        if organization is None:
            raise CommandError(f"No organisation with slug {org_slug!r}.")
        self._next_percent = 0
        csv_text = self._read(csv_path)
        result = people_import(
            actor=None, organization=organization, csv_text=csv_text, dry_run=dry_run, progress=self._progress
        )
        for error in result.errors:
            self.stdout.write(str(error))
        if result.errors:
            problems, rows = len(result.errors), len({e.row for e in result.errors})
            raise CommandError(
                f"Rejected: {problems} problem{pluralize(problems)} on {rows} row{pluralize(rows)} "
                f"(the file has {result.rows} data rows). Nothing was imported.",
                returncode=1,
            )
        self._report(result)

    def _read(self, csv_path: Path) -> str:
        try:
            check_upload_size(csv_path.stat().st_size)
            return decode_upload(csv_path.read_bytes())
        except OSError as exc:
            raise CommandError(f"Cannot read {csv_path}: {exc.strerror}") from None
        except ImportFileError as exc:
            raise CommandError(f"{csv_path}: {exc}") from None

    def _progress(self, done: int, total: int) -> None:
        if total < PROGRESS_MIN_ROWS:
            return
        percent = done * 100 // total
        if percent >= self._next_percent:
            self._next_percent = percent - percent % PROGRESS_STEP_PERCENT + PROGRESS_STEP_PERCENT
            self.stderr.write(f"progress: {percent}% of {total:,} rows")
            self.stderr.flush()

    def _report(self, result) -> None:
        if result.dry_run:
            self.stdout.write("Dry run: the file is valid; nothing was written. An import would make these changes:")
        else:
            self.stdout.write(self.style.SUCCESS("Imported."))
        self.stdout.write(
            f"rows: {result.rows}\n"
            f"created: {result.created}\n"
            f"updated: {result.updated}\n"
            f"contact changed: {result.contact_changed}\n"
            f"unchanged: {result.unchanged}\n"
            f"not in file (left alone): {result.not_in_file}"
        )
