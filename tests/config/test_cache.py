import os

import pytest
from django.core.cache import caches
from django.test import override_settings

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (CI sets it)")


def test_pooled_redis_cache_works_and_reuses_one_client():
    backend = {"BACKEND": "config.cache.PooledClientRedisCache", "LOCATION": os.environ["REDIS_URL"]}
    with override_settings(CACHES={"default": backend, "pooled": backend}):
        cache = caches["pooled"]
        cache.set("pooled-test", {"a": 1}, 30)
        assert cache.get("pooled-test") == {"a": 1}
        cache.delete("pooled-counter")
        assert cache.add("pooled-counter", 0, 30)
        assert cache.incr("pooled-counter") == 1
        client = cache._cache.get_client(write=True)
        assert cache._cache.get_client(write=True) is client
        cache.delete_many(["pooled-test", "pooled-counter"])
