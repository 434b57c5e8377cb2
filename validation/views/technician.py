"""Scaffolding: replaced by the real views."""

from django.http import Http404


def challenge_send(request, *args, **kwargs):
    raise Http404


def code_check(request, *args, **kwargs):
    raise Http404


def enrollment_start(request, *args, **kwargs):
    raise Http404


def totp_check(request, *args, **kwargs):
    raise Http404


def verification_cancel(request, *args, **kwargs):
    raise Http404


def verification_detail(request, *args, **kwargs):
    raise Http404


def verification_list(request, *args, **kwargs):
    raise Http404


def verification_start(request, *args, **kwargs):
    raise Http404


def verification_status(request, *args, **kwargs):
    raise Http404
