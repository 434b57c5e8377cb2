"""Field-level history of the domain models (django-auditlog), with the actor of each change.

Each app registers its own models from its ``AppConfig.ready()`` with
``field_history_register``: imports run access -> validation -> accounts -> audit, so audit
names no other app. The actor recorded on a change is:

- in a request: the signed-in user (``audit.middleware.FieldHistoryMiddleware``), admin
  edits included; the correlation id is the request id its security events carry;
- in a Celery task: the user whose request queued it. ``before_task_publish`` puts the
  user's id (and the request id) in a message header and ``task_prerun``/``task_postrun``
  set them around the task. Beat's tasks have no user: the actor stays empty (the system)
  and the correlation id names the task (``celery:<task name>:<task id>``);
- anywhere else (a management command, a shell): ``with field_history_actor(user): ...``.

Bulk writes (``QuerySet.update``, ``bulk_create``: the directory import) send no signals,
so auditlog cannot see them; the security events of those services record them instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any

from auditlog.cid import correlation_id
from auditlog.context import auditlog_value, set_actor
from auditlog.registry import auditlog
from celery.signals import before_task_publish, task_postrun, task_prerun
from django.contrib.auth import get_user_model
from django.utils.functional import SimpleLazyObject

ACTOR_HEADER = "audit_actor_id"
CID_HEADER = "audit_cid"

_actor: ContextVar[Any] = ContextVar("field_history_actor", default=None)
_running: dict[str, ExitStack] = {}


def field_history_register(model, *, exclude_fields: Iterable[str] = (), mask_fields: Iterable[str] = ()) -> None:
    """Record every create, change and delete of ``model`` field by field. Leave out derived
    fields; never register a model that holds a secret unless that field is excluded."""
    auditlog.register(model, exclude_fields=list(exclude_fields), mask_fields=list(mask_fields))


def current_actor() -> Any:
    return _actor.get()


@contextmanager
def attribution(actor: Any, *, cid: str | None = None) -> Iterator[None]:
    """Who the work inside is done for, as the tasks it queues will see it (and the
    correlation id auditlog records). Does not itself set auditlog's actor."""
    actor_token = _actor.set(actor)
    cid_token = correlation_id.set(cid) if cid is not None else None
    try:
        yield
    finally:
        if cid_token is not None:
            correlation_id.reset(cid_token)
        _actor.reset(actor_token)


@contextmanager
def field_history_actor(actor: Any, *, cid: str | None = None) -> Iterator[None]:
    """Attribute the changes made inside to ``actor`` (a user, or None for the system)."""
    # auditlog does not restore an outer context when an inner one ends; do it here.
    outer = auditlog_value.get(None)
    try:
        with attribution(actor, cid=cid), set_actor(actor):
            yield
    finally:
        if outer is not None:
            auditlog_value.set(outer)


def _task_published(headers: dict | None = None, **kwargs) -> None:
    if headers is None:
        return
    actor, cid = _actor.get(), correlation_id.get()
    if getattr(actor, "pk", None) is not None:
        headers[ACTOR_HEADER] = actor.pk
    if cid:
        headers[CID_HEADER] = cid


def _header(request, name: str) -> Any:
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


def _task_started(task_id: str | None = None, task=None, **kwargs) -> None:
    if task is None or task_id is None or task.request.is_eager:
        return  # an eager task runs inside its caller's context already
    actor_id = _header(task.request, ACTOR_HEADER)
    # Read only if the task changes a registered model or queues a task of its own: most
    # tasks (a text sent, a grant expired) never ask who queued them.
    actor = SimpleLazyObject(partial(_user, actor_id)) if actor_id is not None else None
    cid = _header(task.request, CID_HEADER) or f"celery:{task.name}:{task_id}"
    stack = ExitStack()
    stack.enter_context(field_history_actor(actor, cid=cid))
    _running[task_id] = stack


def _user(pk: Any) -> Any:
    return get_user_model()._default_manager.filter(pk=pk).first()


def _task_finished(task_id: str | None = None, **kwargs) -> None:
    stack = _running.pop(task_id or "", None)
    if stack is not None:
        stack.close()


def connect_celery_signals() -> None:
    before_task_publish.connect(_task_published, weak=False, dispatch_uid="audit.field_history.published")
    task_prerun.connect(_task_started, weak=False, dispatch_uid="audit.field_history.started")
    task_postrun.connect(_task_finished, weak=False, dispatch_uid="audit.field_history.finished")
