"""The compliance report page and its printable version."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit.charts import bar_chart, stacked_bar_chart
from audit.forms import ReportForm
from audit.report import ComplianceReport, compliance_report
from audit.selectors import AuditScope
from audit.views import audit_view


@require_GET
@audit_view
def report(request: HttpRequest, scope: AuditScope) -> HttpResponse:
    return _render(request, scope, "audit/report.html")


@require_GET
@audit_view
def report_print(request: HttpRequest, scope: AuditScope) -> HttpResponse:
    return _render(request, scope, "audit/report_print.html")


def _render(request: HttpRequest, scope: AuditScope, template: str) -> HttpResponse:
    form = ReportForm(request.GET or None, scope=scope)
    result = None
    if form.is_bound and form.is_valid():
        result = compliance_report(
            organization=form.cleaned_data["organization"],
            since=form.cleaned_data["since"],
            until=form.cleaned_data["until"],
        )
    context = {
        "form": form,
        "report": result,
        "charts": _charts(result) if result else {},
        "query": request.GET.urlencode(),
    }
    return render(request, template, context, status=200 if result or not form.is_bound else 400)


def _charts(result: ComplianceReport) -> dict:
    return {
        "requests": bar_chart(title="Caller verifications", rows=result.requests),
        "methods": stacked_bar_chart(
            title="Challenges by method and outcome",
            series=result.outcome_names,
            rows=[(m.method.replace("_", " "), m.cells) for m in result.methods],
        ),
        "grants": bar_chart(
            title="Grants by role (hours active)",
            rows=[(g.role, round(g.total.total_seconds() / 3600, 1)) for g in result.grants],
            unit=" h",
        ),
    }
