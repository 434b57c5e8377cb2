"""CSV and JSON-lines export of any filter the list accepts, streamed.

An export is the list without pages: same scope, same filter, same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit import selectors
from audit.events import EventType
from audit.export import csv_chunks, jsonl_chunks
from audit.forms import EventFilterForm
from audit.recorder import security_event_record
from audit.selectors import AuditScope
from audit.views import audit_view


@require_GET
@audit_view
def export_csv(request: HttpRequest, scope: AuditScope) -> HttpResponseBase:
    return _export(request, scope, csv_chunks, content_type="text/csv; charset=utf-8", extension="csv")


@require_GET
@audit_view
def export_jsonl(request: HttpRequest, scope: AuditScope) -> HttpResponseBase:
    return _export(request, scope, jsonl_chunks, content_type="application/x-ndjson; charset=utf-8", extension="jsonl")


def _export(
    request: HttpRequest,
    scope: AuditScope,
    chunks: Callable[[QuerySet], Iterator[str | bytes]],
    *,
    content_type: str,
    extension: str,
) -> HttpResponseBase:
    form = EventFilterForm(request.GET, scope=scope)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(str(e) for e in errors)}" for name, errors in form.errors.items())
        return HttpResponseBadRequest(f"Invalid filter: {problems}", content_type="text/plain; charset=utf-8")
    events = selectors.security_event_list(scope=scope, event_filter=form.event_filter())
    # Who exported what is itself evidence: recorded before the first row leaves.
    security_event_record(
        event_type=EventType.AUDIT_EXPORTED,
        actor=request.user,
        target=request.user,
        details={"format": extension, "filter": {k: str(v) for k, v in form.cleaned_data.items() if v}},
        request=request,
    )
    response = StreamingHttpResponse(chunks(events), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="security-events-{stamp}.{extension}"'
    response["Cache-Control"] = "no-store"
    return response
