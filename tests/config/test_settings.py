"""Start-up validation of the environment, run as a real process the way operators start it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "p" * 20 + "-production-like-secret-key-with-enough-entropy-0123456789",
    "ALLOWED_HOSTS": "portal.example.com",
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_AUTH_TOKEN": "production-like-token",
    "TWILIO_FROM_NUMBER": "+15005550006",
    "EMAIL_URL": "smtp+tls://mailer:pw@smtp.example.com:587",
}


def run_manage(tmp_path, *args, **env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"))}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PORTAL_VAR_DIR"] = str(tmp_path)
    env.update(PRODUCTION_ENV)
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_mode_refuses_to_start_without_secret_key(tmp_path):
    result = run_manage(tmp_path, "check", SECRET_KEY=None)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_makemigrations_check_runs_without_production_secrets(tmp_path):
    """`manage.py makemigrations --check` compares the models with the migration files: it
    runs in development mode when DEBUG is unset, so it needs no SECRET_KEY."""
    result = run_manage(tmp_path, "makemigrations", "--check", "--dry-run", SECRET_KEY=None, DEBUG=None)
    assert result.returncode == 0, result.stderr
    assert "No changes detected" in result.stdout
    refused = run_manage(tmp_path, "check", SECRET_KEY=None, DEBUG=None)  # anything else still refuses
    assert refused.returncode != 0 and "SECRET_KEY" in refused.stderr


def test_production_mode_rejects_a_short_secret_key(tmp_path):
    result = run_manage(tmp_path, "check", SECRET_KEY="too-short")
    assert result.returncode != 0
    assert "SECRET_KEY: must be at least 50 characters" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "mysql-ish:nonsense"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("SESSION_IDLE_MINUTES", "thirty"),
        ("SESSION_ABSOLUTE_HOURS", "48"),
        ("EMAIL_URL", "carrier-pigeon://coop"),
        ("PUBLIC_BASE_URL", "portal.example.com"),
        ("DIRECTORY_DEFAULT_REGION", "Narnia"),
        ("AUDIT_EXPORT_WORK_MEM", "1GB; DROP TABLE x"),
        ("AUDIT_EXPORT_WORK_MEM", "32kB"),
    ],
)
def test_malformed_value_stops_start_up_and_names_the_variable(tmp_path, variable, value):
    result = run_manage(tmp_path, "check", **{variable: value})
    assert result.returncode != 0
    assert f"Configuration error: {variable}" in result.stderr


def test_twilio_needs_both_credentials(tmp_path):
    result = run_manage(tmp_path, "check", TWILIO_AUTH_TOKEN=None)
    assert result.returncode != 0
    assert "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in result.stderr


def test_production_mode_refuses_the_development_sms_outbox(tmp_path):
    result = run_manage(tmp_path, "check", TWILIO_ACCOUNT_SID=None, TWILIO_AUTH_TOKEN=None)
    assert result.returncode != 0
    assert "TWILIO_ACCOUNT_SID" in result.stderr


def test_secret_can_come_from_a_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("f" * 64)
    result = run_manage(tmp_path, "check", SECRET_KEY=None, SECRET_KEY_FILE=str(secret_file))
    assert result.returncode == 0, result.stderr


def test_check_deploy_is_clean_in_production_mode(tmp_path):
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_development_mode_generates_a_secret_key_once(tmp_path):
    result = run_manage(
        tmp_path, "check", DEBUG="true", SECRET_KEY=None, TWILIO_ACCOUNT_SID=None, TWILIO_AUTH_TOKEN=None
    )
    assert result.returncode == 0, result.stderr
    assert (ROOT / ".secret_key").exists()


def test_production_redirects_to_https_except_the_health_check(tmp_path):
    script = (
        "from django.test import Client; c = Client(HTTP_HOST='portal.example.com'); "
        "print(c.get('/healthz').status_code, c.get('/accounts/login/').status_code)"
    )
    result = run_manage(tmp_path, "shell", "-c", script, DATABASE_URL=None)  # SQLite in tmp_path
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["200", "301"]  # after the shell's banner
