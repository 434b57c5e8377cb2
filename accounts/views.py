"""Portal pages for organisations and people. Thin: parse, call a selector, render."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts import selectors
from accounts.models import User


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)
    organizations = selectors.organization_list_for_user(user=user).annotate(people_count=Count("people"))
    return render(request, "accounts/dashboard.html", {"organizations": organizations})


@require_GET
@login_required
def organization_list(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)
    organizations = selectors.organization_list_for_user(user=user).annotate(people_count=Count("people"))
    return render(request, "accounts/organization_list.html", {"organizations": organizations})


@require_GET
@login_required
def organization_detail(request: HttpRequest, slug: str) -> HttpResponse:
    user = cast(User, request.user)
    organization = selectors.organization_get_for_user(user=user, slug=slug)
    query = request.GET.get("q", "")[:100]
    people = selectors.person_search(user=user, query=query, organization=organization) if query else []
    context = {
        "organization": organization,
        "query": query,
        "people": people,
        "people_count": organization.people.count(),
        "staff": selectors.staff_for_organization(organization=organization),
    }
    return render(request, "accounts/organization_detail.html", context)


@require_GET
@login_required
def person_search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:100]
    people = selectors.person_search(user=cast(User, request.user), query=query)
    context = {
        "query": query,
        "people": people,
        "too_short": 0 < len(query.strip()) < selectors.SEARCH_MIN_LENGTH,
        "limit": selectors.SEARCH_LIMIT,
    }
    return render(request, "accounts/person_search.html", context)


@require_GET
@login_required
def person_detail(request: HttpRequest, pk: int) -> HttpResponse:
    person = selectors.person_get_for_user(user=cast(User, request.user), pk=pk)
    reports = person.reports.order_by("full_name")[:50]
    return render(request, "accounts/person_detail.html", {"person": person, "reports": reports})
