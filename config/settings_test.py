"""Test settings: production-mode settings with test credentials and fast hashing.

The environment is filled in before config.settings reads it, so the suite runs the
same start-up validation as production. DATABASE_URL and REDIS_URL pass through: CI
points them at PostgreSQL and Redis, locally the suite runs on SQLite.
"""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-only-" + "x" * 60)
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("AUDIT_HMAC_KEY", "test-only-audit-hmac-" + "h" * 40)
os.environ.setdefault("AUDIT_SIGNING_KEY", "dGVzdC1vbmx5LWF1ZGl0LXNpZ25pbmcta2V5LTMyYiE=")  # base64 of 32 test bytes
os.environ.setdefault("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
os.environ.setdefault("TWILIO_AUTH_TOKEN", "test-auth-token")
os.environ.setdefault("TWILIO_FROM_NUMBER", "+15005550006")
# Nothing in the suite may reach api.twilio.com: a test that sends without the fake Twilio
# API (tests/fakes/twilio_api.py) or the outbox finds a closed local port instead.
os.environ.setdefault("TWILIO_API_BASE_URL", "http://127.0.0.1:9")
os.environ.setdefault("PORTAL_VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "test"))

from config.env import env_bool, env_int  # noqa: E402
from config.settings import *  # noqa: E402,F403
from config.settings import CACHES as _SETTINGS_CACHES  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Unit tests run tasks eagerly; the Celery integration tests start their worker with
# CELERY_TASK_ALWAYS_EAGER=false so it really consumes from the broker.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", True)
# Tests speak plain HTTP to the test client and live server.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SESSION_COOKIE_NAME = "sessionid"
CSRF_COOKIE_NAME = "csrftoken"
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
if "RedisCache" not in _SETTINGS_CACHES["default"]["BACKEND"]:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The live server for browser tests serves static files straight from the finders.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Tests read the chain right after the action that wrote the event: seal after every commit
# (benchmarks set the production default in the environment).
AUDIT_SEAL_INTERVAL_MS = env_int("AUDIT_SEAL_INTERVAL_MS", 0, minimum=0, maximum=2000)
