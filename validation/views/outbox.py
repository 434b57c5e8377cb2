"""Scaffolding: replaced by the real views."""

from django.http import Http404


def outbox(request, *args, **kwargs):
    raise Http404
