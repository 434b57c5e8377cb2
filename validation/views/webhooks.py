"""Scaffolding: replaced by the real views."""

from django.http import Http404


def twilio_status(request, *args, **kwargs):
    raise Http404
