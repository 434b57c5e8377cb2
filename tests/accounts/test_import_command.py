import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from accounts.models import Person
from audit.events import EventType
from audit.models import SecurityEvent
from tests.accounts.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
HEADER = "employee_id,full_name,email,phone,department,manager_employee_id,privileged"
GOOD = f"{HEADER}\nE1,Ada Boss,ada@client.example,202 555 0101,Board,,yes\nE2,Bob,,,IT,E1,no\n"
BAD = f"{HEADER}\nE1,Ada,ada@client.example,12345,,,\nE2,,ada@client.example,,,E1,\nE3,Cy,,,,GHOST,sometimes\n"


def write(tmp_path: Path, text: str | bytes, name: str = "people.csv") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def command(*args):
    out, err = StringIO(), StringIO()
    call_command("import_people", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_prints_counts_and_records_a_system_event(tmp_path):
    org = OrganizationFactory(slug="acme")
    out, err = command("acme", write(tmp_path, GOOD))
    assert "Imported." in out and "created: 2" in out and "unchanged: 0" in out
    assert err == ""  # no progress lines for a small file
    assert Person.objects.get(organization=org, employee_id="E2").manager.employee_id == "E1"
    event = SecurityEvent.objects.get(event_type=EventType.DIRECTORY_IMPORT_COMPLETED)
    assert event.actor_kind == "system" and event.actor_id is None


def test_second_run_reports_everyone_unchanged(tmp_path):
    OrganizationFactory(slug="acme")
    path = write(tmp_path, GOOD)
    command("acme", path)
    out, _ = command("acme", path)
    assert "created: 0" in out and "updated: 0" in out and "unchanged: 2" in out


def test_dry_run_writes_nothing(tmp_path):
    OrganizationFactory(slug="acme")
    out, _ = command("acme", write(tmp_path, GOOD), "--dry-run")
    assert "Dry run" in out and "created: 2" in out
    assert not Person.objects.exists()


def test_bad_rows_are_printed_one_per_line_and_the_command_fails(tmp_path):
    OrganizationFactory(slug="acme")
    out = StringIO()
    with pytest.raises(CommandError, match="Rejected: 6 problems on 3 rows") as excinfo:
        call_command("import_people", "acme", write(tmp_path, BAD), stdout=out, stderr=StringIO())
    assert excinfo.value.returncode == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == "row 2: email: email ada@client.example is also on row 3"
    assert lines[1] == "row 2: phone: is not a valid phone number (default region US)"
    assert lines[2] == "row 3: full_name: is missing"
    assert lines[3] == "row 3: email: email ada@client.example is also on row 2"
    assert lines[4].startswith("row 4: manager_employee_id: unknown manager GHOST")
    assert lines[5].startswith("row 4: privileged: must be true/false")
    assert not Person.objects.exists()


def test_unknown_organisation_unreadable_and_non_utf8_files_fail_cleanly(tmp_path):
    OrganizationFactory(slug="acme")
    with pytest.raises(CommandError, match="No organisation with slug 'nope'"):
        command("nope", write(tmp_path, GOOD))
    with pytest.raises(CommandError, match="Cannot read"):
        command("acme", str(tmp_path / "missing.csv"))
    with pytest.raises(CommandError, match="not UTF-8"):
        command("acme", write(tmp_path, GOOD.replace("Bob", "Zoë").encode("latin-1")))
    with override_settings(DIRECTORY_IMPORT_MAX_BYTES=20), pytest.raises(CommandError, match="the limit is 20 bytes"):
        command("acme", write(tmp_path, GOOD))


def test_large_file_shows_progress_on_stderr(tmp_path):
    OrganizationFactory(slug="acme")
    rows = "".join(f"P{i},Person {i},,,,,\n" for i in range(12_000))
    out, err = command("acme", write(tmp_path, f"{HEADER}\n{rows}"), "--dry-run")
    progress = err.splitlines()
    assert progress[0] == "progress: 0% of 12,000 rows" and progress[-1] == "progress: 100% of 12,000 rows"
    assert 5 <= len(progress) <= 12
    assert "created: 12000" in out


def test_exit_status_and_help_from_the_command_line(tmp_path):
    """As operators run it: a real process on its own SQLite database."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings_test", PORTAL_VAR_DIR=str(tmp_path / "var"))

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    helped = manage("import_people", "--help")
    assert helped.returncode == 0
    assert "org_slug" in helped.stdout and "--dry-run" in helped.stdout and "row N: field: message" in helped.stdout
    assert manage("migrate", "--noinput").returncode == 0
    create = "from accounts.models import Organization; Organization.objects.create(name='Acme', slug='acme')"
    assert manage("shell", "-c", create).returncode == 0
    rejected = manage("import_people", "acme", write(tmp_path, BAD))
    assert rejected.returncode == 1
    assert "row 2: phone: is not a valid phone number (default region US)" in rejected.stdout
    assert "Nothing was imported" in rejected.stderr
    imported = manage("import_people", "acme", write(tmp_path, GOOD))
    assert imported.returncode == 0, imported.stderr
    assert "created: 2" in imported.stdout
