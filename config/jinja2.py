"""The Jinja2 environment of the live verification fragment (``templates/jinja2/``).

Every other page is a Django template. The fragment is the technician's live view, rendered
after every send, every answer and every poll that finds something new; through Django's
template language it was the largest single piece of a verification round trip's Python in
gunicorn (docs/benchmarks.md). Jinja2 compiles it to Python. What the fragment uses of
Django's template language is here under the same names: ``url`` (the ``{% url %}`` tag)
and the ``date`` filter (in the current time zone, empty for no value). Autoescaping is on,
as in Django's templates.
"""

from __future__ import annotations

from typing import Any

from django.template.defaultfilters import date as django_date
from django.urls import reverse
from django.utils.timezone import template_localtime  # type: ignore[attr-defined]  # Django has it; its stubs do not
from jinja2 import Environment


def url(name: str, *args: Any) -> str:
    return reverse(name, args=args)


def date(value: Any, format_string: str | None = None) -> str:
    """Django's ``date`` filter, given the value in the current time zone as Django's
    templates give it (the filter ``expects_localtime``)."""
    return django_date(template_localtime(value), format_string)


def environment(**options: Any) -> Environment:
    env = Environment(**options)  # noqa: S701 - Django's backend turns autoescape on
    env.globals["url"] = url
    env.filters["date"] = date
    return env
