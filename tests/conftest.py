import pytest


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and used-TOTP marks live in the cache; start each test clean."""
    from django.core.cache import cache

    cache.clear()
    yield
