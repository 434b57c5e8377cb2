"""Celery tasks: load by id, call one service, own the retry policy. No logic here."""

from __future__ import annotations

from celery import shared_task

from validation import services
from validation.channels import SendError

SEND_RETRIES = 5  # backoff 2, 4, 8, 16, 32 s: about a minute, inside a code's lifetime


def _send_challenge(task, dispatch, challenge_id: int) -> None:
    """Send a challenge's message; a transient failure retries with backoff, the last one
    marks the challenge failed (a send failure never counts against the person)."""
    try:
        dispatch(challenge_id=challenge_id)
    except SendError as exc:
        if task.request.retries >= SEND_RETRIES:
            services.challenge_send_failed(
                challenge_id=challenge_id, reason=f"{exc.reason}; gave up after {SEND_RETRIES} retries", code=exc.code
            )
            return
        raise task.retry(countdown=2 ** (task.request.retries + 1)) from None


@shared_task(bind=True, max_retries=SEND_RETRIES, acks_late=True)
def challenge_send(self, challenge_id: int) -> None:
    _send_challenge(self, services.challenge_dispatch, challenge_id)


@shared_task(bind=True, max_retries=SEND_RETRIES, acks_late=True)
def enrollment_send(self, authenticator_id: int) -> None:
    from validation.services.enrollment import enrollment_send_failed

    try:
        services.enrollment_dispatch(authenticator_id=authenticator_id)
    except SendError as exc:
        if self.request.retries >= SEND_RETRIES:
            enrollment_send_failed(authenticator_id=authenticator_id, reason=exc.reason)
            return
        raise self.retry(countdown=2 ** (self.request.retries + 1)) from None


@shared_task
def verification_expire() -> int:
    return services.verification_expire_stale()


@shared_task(acks_late=True)
def fraud_alert(verification_id: int) -> None:
    """The earlier name of ``lock_alert`` for a fraud report: a message queued under it before
    an upgrade (or its retry) is passed on, so the admins still hear. Remove after the next release."""
    lock_alert.delay(verification_id, "fraud")


@shared_task(bind=True, acks_late=True, max_retries=SEND_RETRIES)
def lock_alert(self, verification_id: int, cause: str = "fraud") -> int:
    from smtplib import SMTPException

    from validation.notifications import lock_alert_send

    try:
        return lock_alert_send(verification_id=verification_id, cause=cause)
    except (SMTPException, OSError) as exc:
        raise self.retry(countdown=2 ** (self.request.retries + 1)) from exc


@shared_task(bind=True, max_retries=SEND_RETRIES, acks_late=True)
def approval_send(self, challenge_id: int) -> None:
    from validation.services.approvals import approval_dispatch

    _send_challenge(self, approval_dispatch, challenge_id)


@shared_task(bind=True, max_retries=SEND_RETRIES, acks_late=True)
def approver_code_send(self, challenge_id: int, serial: int) -> None:
    from validation.services.approver import approver_code_dispatch

    try:
        approver_code_dispatch(challenge_id=challenge_id, serial=serial)
    except SendError:
        if self.request.retries >= SEND_RETRIES:
            return  # the approver asks for another code (at most MAX_CODES)
        raise self.retry(countdown=2 ** (self.request.retries + 1)) from None
