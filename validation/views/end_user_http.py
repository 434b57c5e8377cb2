"""HTTP rules for the pages end users open from a text message (and the development outbox).

The one-time token is in the URL, so these responses are never stored by a cache, never
indexed, and tell the browser to send no Referer anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import decorator_from_middleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponseBase]


def private_page(view: View) -> View:
    """No store, no index, no Referer: for responses whose URL or body holds a live link."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        add_never_cache_headers(response)
        # Set here, so SecurityMiddleware's site-wide "same-origin" (a setdefault) leaves it.
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex"
        return response

    return wrapper


class _LinkPageCsrfMiddleware(CsrfViewMiddleware):
    """Django's CSRF check, also accepting ``Origin: null``.

    Under ``Referrer-Policy: no-referrer`` browsers send ``Origin: null`` and no Referer
    with a form POST (Fetch standard, "append a request Origin header"; Chromium does),
    which Django's origin check refuses. The csrftoken cookie must still match the form
    field, and a forging site would also need the signed link, which only the phone has.
    """

    def _origin_verified(self, request: HttpRequest) -> bool:
        return request.META.get("HTTP_ORIGIN") == "null" or super()._origin_verified(request)  # type: ignore[misc]

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        logger.warning("CSRF check failed on an end-user page: %s", reason)  # not the path: it holds the token
        return render(
            request,
            "validation/end_user/problem.html",
            {
                "title": "Please open the link again",
                "message": "This page could not be sent: your browser did not send back the cookie it was given. "
                "Allow cookies for this site, open the link from your text message again and answer there.",
            },
            status=403,
        )


_link_page_csrf = decorator_from_middleware(_LinkPageCsrfMiddleware)


def end_user_page(view: View) -> View:
    """GET shows, POST answers (CSRF-checked as above); every response is private."""
    checked = _link_page_csrf(require_http_methods(["GET", "HEAD", "POST"])(view))
    # csrf_exempt only turns off the site-wide check, which _link_page_csrf replaces.
    return csrf_exempt(private_page(checked))
