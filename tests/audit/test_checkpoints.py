"""Signed checkpoints: the signature verifies with the public key alone, a forged one does not,
copies reach the file and the HTTP endpoint, and beat runs the sealer and the checkpoints."""

import base64
import io
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import time_machine
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.core.management import call_command
from django.utils import timezone

from audit.checkpoints import (
    CheckpointPublishError,
    checkpoint_as_dict,
    checkpoint_publish,
    checkpoint_signature_valid,
    checkpoint_write,
)
from audit.models import ChainLink, Checkpoint, SecurityEvent
from audit.tasks import audit_seal
from audit.verify import chain_verify
from config.celery import app as celery_app
from tests.audit.conftest import record_events

pytestmark = pytest.mark.django_db


def public_key() -> Ed25519PublicKey:
    out = io.StringIO()
    call_command("audit_checkpoint", "--public-key", stdout=out)
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(out.getvalue().strip()))


def test_a_checkpoint_verifies_with_nothing_but_the_public_key(sealed_events):
    sealed_events(3)
    checkpoint = checkpoint_write()
    head = ChainLink.objects.get(sequence=3)
    assert (checkpoint.kind, checkpoint.sequence, checkpoint.hash) == ("scheduled", 3, head.hash)

    # docs/audit.md, "Checkpoints": the signed bytes, written out independently.
    payload = json.dumps(
        {
            "chain": "helpdesk-portal/security-events",
            "created_at": checkpoint.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "hash": head.hash,
            "kind": "scheduled",
            "sequence": 3,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    public_key().verify(bytes.fromhex(checkpoint.signature), payload)
    with pytest.raises(InvalidSignature):
        public_key().verify(bytes.fromhex(checkpoint.signature), payload.replace(b'"sequence":3', b'"sequence":2'))


def test_a_forged_or_altered_checkpoint_does_not_verify(sealed_events, settings):
    sealed_events(1)
    data = checkpoint_as_dict(checkpoint_write())
    assert checkpoint_signature_valid(data)
    assert not checkpoint_signature_valid({**data, "sequence": 2})
    assert not checkpoint_signature_valid({**data, "hash": "0" * 64})

    settings.AUDIT_SIGNING_KEY = Ed25519PrivateKey.generate().private_bytes_raw()  # someone else's key
    forged = checkpoint_as_dict(checkpoint_write(force=True))
    settings.AUDIT_SIGNING_KEY = base64.b64decode("dGVzdC1vbmx5LWF1ZGl0LXNpZ25pbmcta2V5LTMyYiE=")
    assert not checkpoint_signature_valid(forged)
    assert [p.kind for p in chain_verify().problems] == ["checkpoint_forged"]


def test_checkpoints_signed_before_a_key_rotation_verify_with_the_retired_public_key(sealed_events, settings):
    sealed_events(2)
    old = checkpoint_as_dict(checkpoint_write())
    old_public = public_key().public_bytes_raw()
    settings.AUDIT_SIGNING_KEY = Ed25519PrivateKey.generate().private_bytes_raw()
    assert not checkpoint_signature_valid(old)

    settings.AUDIT_SIGNING_RETIRED_PUBLIC_KEYS = [old_public]
    checkpoint_write(force=True)
    assert checkpoint_signature_valid(old)
    assert chain_verify().ok


def test_a_scheduled_checkpoint_is_skipped_while_the_head_stays_put_but_written_hourly(sealed_events):
    sealed_events(2)
    assert checkpoint_write() is not None
    assert checkpoint_write() is None
    with time_machine.travel(timezone.now() + timedelta(minutes=61)):
        assert checkpoint_write() is not None
    sealed_events(1)
    assert checkpoint_write().sequence == 3
    assert Checkpoint.objects.count() == 3


def test_the_copy_file_gets_one_json_line_per_checkpoint(
    sealed_events, checkpoint_file, django_capture_on_commit_callbacks
):
    sealed_events(2)
    with django_capture_on_commit_callbacks(execute=True):
        first = checkpoint_write()
    sealed_events(1)
    with django_capture_on_commit_callbacks(execute=True):
        second = checkpoint_write()

    lines = [json.loads(line) for line in checkpoint_file.read_text().splitlines()]
    assert [line["sequence"] for line in lines] == [first.sequence, second.sequence] == [2, 3]
    assert all(checkpoint_signature_valid(line) for line in lines)
    assert set(lines[0]) == {"chain", "kind", "sequence", "hash", "created_at", "key_id", "signature"}


class Endpoint(BaseHTTPRequestHandler):
    received: list = []
    status = 201

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Endpoint.received.append((self.headers.get("Authorization"), self.headers.get("Content-Type"), body))
        self.send_response(Endpoint.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint(settings, monkeypatch):
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    server = HTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Endpoint.received, Endpoint.status = [], 201
    settings.AUDIT_CHECKPOINT_URL = f"http://127.0.0.1:{server.server_port}/checkpoints"
    settings.AUDIT_CHECKPOINT_TOKEN = "endpoint-token"
    yield Endpoint
    server.shutdown()
    server.server_close()


def test_checkpoints_are_posted_to_the_endpoint(sealed_events, endpoint, django_capture_on_commit_callbacks):
    sealed_events(2)
    with django_capture_on_commit_callbacks(execute=True):
        checkpoint = checkpoint_write()

    ((authorization, content_type, body),) = endpoint.received
    assert authorization == "Bearer endpoint-token" and content_type == "application/json"
    posted = json.loads(body)
    assert posted["sequence"] == checkpoint.sequence and checkpoint_signature_valid(posted)


def test_an_endpoint_that_fails_is_reported_for_a_retry(sealed_events, endpoint):
    sealed_events(1)
    endpoint.status = 503
    with pytest.raises(CheckpointPublishError, match="HTTP 503"):
        checkpoint_publish(checkpoint_write(), "url")


def test_beat_seals_every_few_seconds_and_checkpoints_every_five_minutes():
    schedule = celery_app.conf.beat_schedule
    assert schedule["audit-seal"]["task"] == "audit.tasks.audit_seal"
    assert schedule["audit-seal"]["schedule"] <= 5
    assert schedule["audit-checkpoint"]["task"] == "audit.tasks.audit_checkpoint"
    assert schedule["audit-checkpoint"]["schedule"] == 300
    assert {"audit.tasks.audit_seal", "audit.tasks.audit_checkpoint"} <= set(celery_app.tasks)


def test_the_beat_backstop_seals_what_a_crashed_process_left(db):
    record_events(3)  # committed, but the process died before its after-commit sealing
    assert audit_seal.delay().get() == 3
    assert SecurityEvent.objects.filter(link__isnull=True).count() == 0
