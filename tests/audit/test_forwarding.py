"""SIEM forwarding: one JSON line per committed (and sealed) event on ``audit.events``, none
for a rolled-back one, nothing secret; the file and syslog handlers wired from the environment.
Real transactions throughout: lines are written only after a real commit."""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import time_machine
from django.db import transaction

from audit.events import EventType
from audit.export import export_columns
from audit.forwarding import security_events_forward
from audit.models import ChainLink, SecurityEvent
from audit.recorder import security_event_record
from tests.audit.auditor_fixtures import T0
from tests.audit.test_export import run_verification_flow

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "from audit.forwarding import security_events_forward;"
    "security_events_forward(sender=None, events=[{'id': 1, 'event_type': 'auth.logout', 'details': {'probe': 1}}])"
)


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    @property
    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def forwarded():
    """What the ``audit.events`` logger emits, as a SIEM handler would receive it."""
    logger = logging.getLogger("audit.events")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def logout(org=None):
    return security_event_record(event_type=EventType.AUTH_LOGOUT, organization=org, details={"idle": True})


@pytest.mark.django_db(transaction=True)
def test_each_committed_event_is_forwarded_once_after_commit(forwarded, org_a):
    with transaction.atomic():
        first, second = logout(org_a), logout(org_a)
        assert forwarded.lines == []  # nothing while the transaction is open
    assert [e["id"] for e in forwarded.events] == [first.pk, second.pk]
    line = forwarded.events[0]
    assert list(line) == list(export_columns())
    assert line["event_type"] == "auth.logout" and line["details"] == {"idle": True}
    assert line["organization_label"] == "Alpha Corp"
    assert "\n" not in forwarded.lines[0]
    # Forwarded once sealed: the SIEM gets the chain too, in order.
    stored = ChainLink.objects.get(event_id=second.pk)
    assert forwarded.events[1]["sequence"] == stored.sequence == forwarded.events[0]["sequence"] + 1
    assert forwarded.events[1]["previous_hash"] == forwarded.events[0]["hash"]
    assert forwarded.events[1]["hash"] == stored.hash and len(stored.hash) == 64


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_event_is_never_forwarded(forwarded, org_a):
    with pytest.raises(RuntimeError), transaction.atomic():
        logout(org_a)
        raise RuntimeError("the change failed")
    kept = logout(org_a)  # autocommit: forwarded at once
    assert [e["id"] for e in forwarded.events] == [kept.pk]
    assert SecurityEvent.objects.filter(event_type="auth.logout").count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_event_rolled_back_with_its_savepoint_is_not_forwarded(forwarded, org_a):
    with transaction.atomic():
        kept = logout(org_a)
        try:
            with transaction.atomic():
                logout(org_a)
                raise ValueError
        except ValueError:
            pass
    assert [e["id"] for e in forwarded.events] == [kept.pk]


@pytest.mark.django_db(transaction=True)
def test_a_broken_handler_never_fails_the_committed_change(org_a):
    class Broken(logging.Handler):
        def emit(self, record):
            raise OSError("SIEM unreachable")

    logger = logging.getLogger("audit.events")
    broken, level = Broken(), logger.level
    logger.addHandler(broken)
    logger.setLevel(logging.INFO)
    try:
        with transaction.atomic():
            event = logout(org_a)
    finally:
        logger.removeHandler(broken)
        logger.setLevel(level)
    assert SecurityEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_no_secret_reaches_a_forwarded_line(
    forwarded, technician_a, person_a, settings, django_capture_on_commit_callbacks
):
    settings.SMS_DEV_OUTBOX = True
    with time_machine.travel(T0, tick=False):
        code, token = run_verification_flow(technician_a, person_a, django_capture_on_commit_callbacks)
    text = "\n".join(forwarded.lines)
    assert "verification.challenge_approved" in text and "verification.challenge_created" in text
    assert code not in text and token not in text and "/r/" not in text


def test_nothing_is_serialised_without_a_destination(monkeypatch):
    assert logging.getLogger("audit.events").getEffectiveLevel() > logging.INFO
    monkeypatch.setattr("audit.forwarding.security_event_line", lambda event: pytest.fail("serialised"))
    security_events_forward(sender=None, events=[{"id": 1, "event_type": "auth.logout"}])


# --- Handlers wired from the environment (a real process, as operators start it) --------


def run_probe(tmp_path, probe=PROBE, **env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_FORWARD")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings_test", PORTAL_VAR_DIR=str(tmp_path), **env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_forwarder_is_connected_when_the_apps_start(tmp_path):
    """In every process (web, worker, beat), not only where something imports the module."""
    probe = (
        "import sys; from audit.signals import security_events_sealed;"
        "sys.exit(0 if any('audit.forwarding' in repr(r) for r in security_events_sealed.receivers) else 3)"
    )
    assert run_probe(tmp_path, probe).returncode == 0


def test_forward_file_receives_json_lines(tmp_path):
    target = tmp_path / "siem" / "events.jsonl"
    target.parent.mkdir()
    result = run_probe(tmp_path, AUDIT_FORWARD_FILE=str(target))
    assert result.returncode == 0, result.stderr
    (line,) = target.read_text().splitlines()
    assert json.loads(line)["details"] == {"probe": 1}


def test_forward_syslog_over_udp(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(30)
        port = collector.getsockname()[1]
        result = run_probe(tmp_path, AUDIT_FORWARD_SYSLOG=f"udp://127.0.0.1:{port}")
        assert result.returncode == 0, result.stderr
        message = collector.recv(65535).decode()
    prefix = "<134>portal-audit: "  # local0.info
    assert message.startswith(prefix)
    assert json.loads(message[len(prefix) :])["details"] == {"probe": 1}


def test_forward_syslog_over_tcp_is_newline_framed(tmp_path):
    received: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.listen(1)
        collector.settimeout(30)
        port = collector.getsockname()[1]

        def accept():
            connection, _ = collector.accept()
            with connection:
                while chunk := connection.recv(65535):
                    received.append(chunk)

        reader = threading.Thread(target=accept)
        reader.start()
        result = run_probe(
            tmp_path, AUDIT_FORWARD_SYSLOG=f"tcp://127.0.0.1:{port}", AUDIT_FORWARD_SYSLOG_FACILITY="local3"
        )
        reader.join(30)
    assert result.returncode == 0, result.stderr
    message = b"".join(received).decode()
    assert message.startswith("<158>portal-audit: {") and message.endswith("}\n") and "\x00" not in message


def test_portal_starts_while_the_tcp_collector_is_down(tmp_path):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = run_probe(tmp_path, AUDIT_FORWARD_SYSLOG=f"tcp://127.0.0.1:{port}")
    assert result.returncode == 0, result.stderr
    assert "Traceback" in result.stderr or "Logging error" in result.stderr  # the lost line is reported


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUDIT_FORWARD_SYSLOG", "syslog.example.com:514"),
        ("AUDIT_FORWARD_SYSLOG", "tcp://siem.example.com"),
        ("AUDIT_FORWARD_SYSLOG_FACILITY", "local9"),
    ],
)
def test_a_malformed_destination_stops_start_up(tmp_path, variable, value):
    result = run_probe(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert f"Configuration error: {variable}" in result.stderr
