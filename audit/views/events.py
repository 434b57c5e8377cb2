"""Event list, event detail and the per-person and per-staff timelines.

The timelines are the list with one filter fixed, so everything the list can do (narrow,
page, export) they can too.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts.models import Person, User
from audit import selectors
from audit.export import CHAIN_COLUMNS
from audit.forms import EventFilterForm
from audit.models import SecurityEvent
from audit.selectors import AuditScope, Cursor, EventFilter
from audit.views import audit_view

CURSOR_PARAMS = ("before", "after")


@require_GET
@audit_view
def event_list(request: HttpRequest, scope: AuditScope) -> HttpResponse:
    return _render_list(request, scope, title="Security events")


@require_GET
@audit_view
def person_timeline(request: HttpRequest, scope: AuditScope, pk: int) -> HttpResponse:
    person = Person.objects.select_related("organization").filter(pk=pk).first()
    if person is not None and not scope.covers(person.organization_id):
        raise Http404("No such person")
    fixed = EventFilter(person_id=pk)
    if person is None and not _any_event(scope, fixed):
        raise Http404("No such person")
    title = f"Timeline of {person.full_name}" if person else f"Timeline of person #{pk} (no longer in the directory)"
    return _render_list(request, scope, title=title, fixed=fixed, subject=person)


@require_GET
@audit_view
def staff_timeline(request: HttpRequest, scope: AuditScope, pk: int) -> HttpResponse:
    staff = User.objects.filter(pk=pk).first()
    fixed = EventFilter(staff_id=pk)
    visible = staff is not None and (
        selectors.audit_staff_list(scope=scope).filter(pk=pk).exists() or _any_event(scope, fixed)
    )
    if not visible:
        raise Http404("No such staff member")
    return _render_list(request, scope, title=f"Timeline of {staff}", fixed=fixed, subject=staff)


@require_GET
@audit_view
def event_detail(request: HttpRequest, scope: AuditScope, pk: int) -> HttpResponse:
    event = selectors.security_event_get(scope=scope, pk=pk)
    context = {
        "event": event,
        "details_json": json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=False),
        "link_verifies": event_link_status(event),
        "person_id": _person_of(event),
        "staff_id": event.actor_id if event.actor_kind == "staff" else None,
        "chain_fields": _chain_fields(event),
        "link": getattr(event, "link", None),
    }
    return render(request, "audit/event_detail.html", context)


def event_link_status(event: SecurityEvent) -> bool | None:
    """Whether the event's hash-chain link verifies; None when the chain cannot tell."""
    try:
        from audit.chain import event_link_verifies  # provided by the hash-chain work
    except ImportError:
        return None
    return event_link_verifies(event)


def _chain_fields(event: SecurityEvent) -> list[tuple[str, object]]:
    fields = []
    link = getattr(event, "link", None)  # none while the event waits for the sealer
    for column in CHAIN_COLUMNS:
        value = getattr(link, column, None)
        if isinstance(value, datetime):
            value = f"{value:%Y-%m-%d %H:%M:%S.%f}"
        fields.append((column.replace("_", " ").capitalize(), "—" if value in (None, "") else value))
    return fields


def _any_event(scope: AuditScope, event_filter: EventFilter) -> bool:
    return selectors.security_event_list(scope=scope, event_filter=event_filter).exists()


def _person_of(event: SecurityEvent) -> int | None:
    if event.target_type == "accounts.person" and event.target_id.isdigit():
        return int(event.target_id)
    person = event.details.get("person") if isinstance(event.details, dict) else None
    return person if isinstance(person, int) else None


def _cursor(request: HttpRequest, name: str) -> Cursor | None:
    try:
        return Cursor.parse(request.GET.get(name, ""))
    except ValueError:
        return None


def _query(params: QueryDict, **extra: str) -> str:
    params = params.copy()
    for name in CURSOR_PARAMS:
        params.pop(name, None)
    for name, value in extra.items():
        params[name] = value
    return params.urlencode()


def _render_list(
    request: HttpRequest,
    scope: AuditScope,
    *,
    title: str,
    fixed: EventFilter | None = None,
    subject: object = None,
) -> HttpResponse:
    form = EventFilterForm(request.GET, scope=scope)
    page = None
    export_query = ""
    if form.is_valid():
        event_filter = form.event_filter()
        if fixed is not None:
            event_filter = replace(event_filter, person_id=fixed.person_id, staff_id=fixed.staff_id)
        events = selectors.security_event_list(scope=scope, event_filter=event_filter)
        page = selectors.security_event_page(
            events=events, before=_cursor(request, "before"), after=_cursor(request, "after")
        )
        fixed_params = {
            k: str(v) for k, v in (("person", event_filter.person_id), ("staff", event_filter.staff_id)) if v
        }
        export_query = _query(request.GET, **fixed_params)
    context = {
        "title": title,
        "subject": subject,
        "form": form,
        "page": page,
        "older_url": f"?{_query(request.GET, before=str(page.older))}" if page and page.older else "",
        "newer_url": f"?{_query(request.GET, after=str(page.newer))}" if page and page.newer else "",
        "newest_url": f"?{_query(request.GET)}",
        "csv_url": f"{reverse('audit:export_csv')}?{export_query}" if page is not None else "",
        "jsonl_url": f"{reverse('audit:export_jsonl')}?{export_query}" if page is not None else "",
        "scope": scope,
    }
    return render(request, "audit/event_list.html", context)
