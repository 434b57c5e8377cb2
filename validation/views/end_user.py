"""Scaffolding: replaced by the real views."""

from django.http import Http404


def enroll(request, *args, **kwargs):
    raise Http404


def push_respond(request, *args, **kwargs):
    raise Http404
