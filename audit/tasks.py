"""Celery tasks of the event log: thin, each calls one service and owns its retry policy."""

from __future__ import annotations

from celery import shared_task

from audit.chain import security_event_seal
from audit.checkpoints import CheckpointPublishError, checkpoint_publish, checkpoint_write
from audit.models import Checkpoint

PUBLISH_RETRIES = 8  # backoff 2 s ... 256 s: about 8 minutes for a file share or endpoint to come back


@shared_task(ignore_result=True)
def audit_seal() -> int:
    """Backstop: the recorder seals right after each commit; this catches what a crashed
    process left behind. Idempotent and cheap when nothing is pending."""
    return security_event_seal()


@shared_task(ignore_result=True)
def audit_checkpoint() -> None:
    checkpoint_write()


@shared_task(bind=True, max_retries=PUBLISH_RETRIES, acks_late=True, ignore_result=True)
def audit_checkpoint_publish(self, checkpoint_id: int, destination: str) -> None:
    checkpoint = Checkpoint.objects.filter(pk=checkpoint_id).first()
    if checkpoint is None:
        return  # its transaction rolled back
    try:
        checkpoint_publish(checkpoint, destination)
    except CheckpointPublishError as exc:
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from None
