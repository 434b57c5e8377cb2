"""Directory import pages: upload a CSV, watch the job, import for real after a clean dry run.

Only org admins (and superusers) of an organisation they are assigned to may import:
another organisation is a 404, a missing role a 403 that says why.
"""

from __future__ import annotations

from functools import wraps
from typing import cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors
from accounts.imports import COLUMNS, ImportFileError, check_upload_size, decode_upload
from accounts.imports.jobs import (
    ImportJobNotConfirmable,
    import_job_confirm,
    import_job_create,
    import_job_get,
    import_job_is_confirmable,
    import_job_list_recent,
    import_job_progress,
)
from accounts.models import Organization, Role, User


class PeopleImportForm(forms.Form):
    file = forms.FileField(label="People CSV file (UTF-8)")
    dry_run = forms.BooleanField(
        required=False, initial=True, label="Dry run: check the file and show what would change, write nothing"
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            check_upload_size(upload.size)
            self.csv_text = decode_upload(upload.read())
        except ImportFileError as exc:
            raise forms.ValidationError(str(exc)) from None
        return upload


def org_admin_required(view):
    """Resolve ``slug`` to an organisation the user may see (else 404) and require the Org admin role."""

    @wraps(view)
    def wrapper(request: HttpRequest, slug: str, **kwargs) -> HttpResponse:
        user = cast(User, request.user)  # login_required runs first
        organization = selectors.organization_get_for_user(user=user, slug=slug)
        if not (user.is_superuser or user.has_role(Role.ORG_ADMIN)):
            return render(request, "accounts/import_forbidden.html", {"organization": organization}, status=403)
        return view(request, organization, **kwargs)

    return wrapper


@require_http_methods(["GET", "POST"])
@login_required
@org_admin_required
def people_import_upload(request: HttpRequest, organization: Organization) -> HttpResponse:
    form = PeopleImportForm(request.POST, request.FILES) if request.method == "POST" else PeopleImportForm()
    if form.is_bound and form.is_valid():
        job = import_job_create(
            actor=cast(User, request.user),
            organization=organization,
            csv_text=form.csv_text,
            dry_run=form.cleaned_data["dry_run"],
            file_name=form.cleaned_data["file"].name,
        )
        return redirect("people_import_job", slug=organization.slug, pk=job.pk)
    context = {
        "organization": organization,
        "form": form,
        "columns": COLUMNS,
        "jobs": import_job_list_recent(organization=organization),
    }
    return render(request, "accounts/import_upload.html", context)


@require_GET
@login_required
@org_admin_required
def people_import_job(request: HttpRequest, organization: Organization, pk: int) -> HttpResponse:
    job = import_job_get(organization=organization, pk=pk)
    done, total = import_job_progress(job=job)
    result = job.result or {}
    context = {
        "organization": organization,
        "job": job,
        "done": done,
        "total": total,
        "percent": done * 100 // total if total else 0,
        "result": result,
        "errors": result.get("errors", []),
        "errors_cut": result.get("error_count", 0) > len(result.get("errors", [])),
        "confirmable": import_job_is_confirmable(job=job),
    }
    return render(request, "accounts/import_job.html", context)


@require_POST
@login_required
@org_admin_required
def people_import_confirm(request: HttpRequest, organization: Organization, pk: int) -> HttpResponse:
    job = import_job_get(organization=organization, pk=pk)
    try:
        new_job = import_job_confirm(actor=cast(User, request.user), job=job)
    except ImportJobNotConfirmable as exc:
        messages.error(request, str(exc))
        return redirect("people_import_job", slug=organization.slug, pk=job.pk)
    return redirect("people_import_job", slug=organization.slug, pk=new_job.pk)
