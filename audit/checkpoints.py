"""Signed checkpoints of the chain head, in the database and optionally outside it.

A checkpoint says "at ``created_at`` the chain ended at ``sequence`` with ``hash``", signed
with Ed25519 (``AUDIT_SIGNING_KEY``). ``audit_verify`` uses the latest one to notice a tail
cut off since then, and a *retention* checkpoint to accept that the events up to its
sequence were dropped on purpose. Copies go to ``AUDIT_CHECKPOINT_FILE`` (JSON lines) and
``AUDIT_CHECKPOINT_URL`` (POST) so that someone with write access to the database cannot
quietly delete the checkpoints as well as the events.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from cryptography.exceptions import InvalidSignature
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit import keys
from audit.chain import chain_head, security_event_seal, utc_text
from audit.models import Checkpoint

CHAIN_NAME = "helpdesk-portal/security-events"
# A scheduled checkpoint is skipped when the head has not moved, but one is written at
# least this often, so a verifier can tell an idle log from a stopped beat.
HEARTBEAT = timedelta(hours=1)
POST_TIMEOUT_SECONDS = 10


class CheckpointPublishError(Exception):
    """A copy of a checkpoint could not be written outside the database (worth a retry)."""


def checkpoint_payload(*, kind: str, sequence: int, hash: str, created_at: datetime) -> bytes:
    """The signed bytes: canonical JSON (sorted keys, no whitespace) of the checkpoint."""
    content = {
        "chain": CHAIN_NAME,
        "created_at": utc_text(created_at),
        "hash": hash,
        "kind": kind,
        "sequence": sequence,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def checkpoint_create(*, kind: str, sequence: int, hash: str) -> Checkpoint:
    """Sign and store a checkpoint; its copies leave once the transaction commits."""
    signer = keys.signing_key()
    created_at = timezone.now()
    payload = checkpoint_payload(kind=kind, sequence=sequence, hash=hash, created_at=created_at)
    checkpoint = Checkpoint.objects.create(
        kind=kind,
        sequence=sequence,
        hash=hash,
        created_at=created_at,
        key_id=keys.public_key_id(signer.public_key()),
        signature=signer.sign(payload).hex(),
    )
    from audit.tasks import audit_checkpoint_publish

    for destination in checkpoint_destinations():
        transaction.on_commit(partial(audit_checkpoint_publish.delay, checkpoint.pk, destination))
    return checkpoint


def checkpoint_write(*, force: bool = False) -> Checkpoint | None:
    """Seal what is pending, then checkpoint the head. Skipped (None) when the head has not
    moved since the last scheduled checkpoint and that one is younger than HEARTBEAT."""
    security_event_seal()
    with transaction.atomic():
        sequence, digest = chain_head()
        latest = Checkpoint.objects.filter(kind=Checkpoint.Kind.SCHEDULED).first()
        if (
            not force
            and latest is not None
            and (latest.sequence, latest.hash) == (sequence, digest)
            and timezone.now() - latest.created_at < HEARTBEAT
        ):
            return None
        return checkpoint_create(kind=Checkpoint.Kind.SCHEDULED, sequence=sequence, hash=digest)


def checkpoint_as_dict(checkpoint: Checkpoint) -> dict[str, Any]:
    """What goes to the file and the URL: everything needed to check it with the public key."""
    return {
        "chain": CHAIN_NAME,
        "kind": checkpoint.kind,
        "sequence": checkpoint.sequence,
        "hash": checkpoint.hash,
        "created_at": utc_text(checkpoint.created_at),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }


def checkpoint_signature_valid(data: dict[str, Any], public_keys: dict | None = None) -> bool:
    """Whether ``data`` (a checkpoint row's values or a dict from ``checkpoint_as_dict``) is
    signed by a configured signing key, current or retired."""
    public_keys = keys.verification_keys() if public_keys is None else public_keys
    key = public_keys.get(data.get("key_id", ""))
    created_at = data.get("created_at")
    if isinstance(created_at, str):
        created_at = parse_datetime(created_at)
    if key is None or created_at is None:
        return False
    try:
        payload = checkpoint_payload(
            kind=data["kind"], sequence=int(data["sequence"]), hash=data["hash"], created_at=created_at
        )
        key.verify(bytes.fromhex(data["signature"]), payload)
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return False
    return True


def retention_anchor() -> Checkpoint | None:
    """The retention checkpoint the oldest remaining event links to, if it verifies."""
    anchor = Checkpoint.objects.filter(kind=Checkpoint.Kind.RETENTION).order_by("-sequence", "-id").first()
    if anchor is None or not checkpoint_signature_valid(checkpoint_as_dict(anchor)):
        return None
    return anchor


def checkpoint_destinations() -> list[str]:
    destinations = []
    if settings.AUDIT_CHECKPOINT_FILE:
        destinations.append("file")
    if settings.AUDIT_CHECKPOINT_URL:
        destinations.append("url")
    return destinations


def checkpoint_publish(checkpoint: Checkpoint, destination: str) -> None:
    """Write one copy outside the database. Raises CheckpointPublishError when it failed."""
    line = json.dumps(checkpoint_as_dict(checkpoint), sort_keys=True, separators=(",", ":"))
    target = {"file": settings.AUDIT_CHECKPOINT_FILE, "url": settings.AUDIT_CHECKPOINT_URL}.get(destination)
    if not target:
        raise CheckpointPublishError(f"checkpoint destination {destination!r} is not configured")
    if destination == "file":
        _append_line(target, line)
    else:
        _post(target, line)


def _append_line(path: str, line: str) -> None:
    try:
        # One write() on an O_APPEND file: lines from several workers never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise CheckpointPublishError(f"AUDIT_CHECKPOINT_FILE {path}: {exc.strerror}") from exc


def _post(url: str, line: str) -> None:
    headers = {"Content-Type": "application/json"}
    if settings.AUDIT_CHECKPOINT_TOKEN:
        headers["Authorization"] = f"Bearer {settings.AUDIT_CHECKPOINT_TOKEN}"
    request = urllib.request.Request(url, data=line.encode(), headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=POST_TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) only
            status = response.status
    except urllib.error.HTTPError as exc:
        raise CheckpointPublishError(f"AUDIT_CHECKPOINT_URL answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CheckpointPublishError(f"AUDIT_CHECKPOINT_URL unreachable: {exc}") from None
    if not 200 <= status < 300:
        raise CheckpointPublishError(f"AUDIT_CHECKPOINT_URL answered HTTP {status}")


def checkpoints_from_file(path: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The checkpoints in a copy file, and a message per line that is not one."""
    found, unreadable = [], []
    try:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except ValueError:
                    data = None
                if isinstance(data, dict):
                    found.append({**data, "source": f"{path}:{number}"})
                else:
                    unreadable.append(f"{path}:{number}: not a checkpoint")
    except OSError as exc:
        unreadable.append(f"{path}: cannot read ({exc.strerror})")
    return found, unreadable
