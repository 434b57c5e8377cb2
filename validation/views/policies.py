"""Scaffolding: replaced by the real views."""

from django.http import Http404


def policy_edit(request, *args, **kwargs):
    raise Http404


def policy_list(request, *args, **kwargs):
    raise Http404
