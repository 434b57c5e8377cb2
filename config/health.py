"""``GET /healthz``: whether this web process can reach its database and its cache, for a
load balancer or an uptime check. No sign-in; it says only "ok" or "unavailable" per
dependency (never an error text, which could name hosts or users)."""

from __future__ import annotations

import logging
import secrets

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


def _database() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)


def _cache() -> bool:
    key = f"health:probe:{secrets.token_hex(8)}"  # each probe its own key: concurrent probes never collide
    cache.set(key, "ok", timeout=10)
    try:
        return cache.get(key) == "ok"
    finally:
        cache.delete(key)


CHECKS = {"database": _database, "cache": _cache}


@require_safe
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = "ok" if check() else "unavailable"
        except Exception as exc:  # noqa: BLE001 - any failure is "unavailable"; the type is logged
            logger.warning("Health check: %s unavailable (%s)", name, type(exc).__name__)
            results[name] = "unavailable"
    healthy = all(value == "ok" for value in results.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **results}, status=200 if healthy else 503)
