"""GET /healthz: database and cache reachable, or 503 naming which one is not."""

import pytest
from django.urls import reverse

from config import health


@pytest.mark.django_db
def test_healthy_without_signing_in(client):
    response = client.get(reverse("health"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_a_dependency_down_is_503_without_its_error_text(client, monkeypatch, caplog):
    def refused():
        raise ConnectionError("redis://secret-host:6379 refused for user admin")

    monkeypatch.setitem(health.CHECKS, "cache", refused)
    response = client.get(reverse("health"))
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "cache": "unavailable"}
    assert "secret-host" not in response.content.decode() and "secret-host" not in caplog.text
    assert "ConnectionError" in caplog.text


@pytest.mark.django_db
def test_only_reads(client):
    assert client.post(reverse("health")).status_code == 405
    assert client.head(reverse("health")).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_probes_never_report_each_other_down():
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    def probe(_):
        try:
            return health._cache()
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(probe, range(400)))
