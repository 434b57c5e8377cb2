"""Settings for the helpdesk validation portal, read from the environment.

Every variable is listed in docs/configuration.md. DEBUG=true is development mode;
anything else is production mode, which refuses to start without SECRET_KEY and
turns on the secure cookie and transport settings.
"""

from __future__ import annotations

import hashlib
import secrets
import ssl
from datetime import timedelta
from logging.handlers import SysLogHandler
from pathlib import Path

import phonenumbers
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    env_bool,
    env_database,
    env_ed25519_private_key,
    env_ed25519_public_keys,
    env_email,
    env_int,
    env_list,
    env_pg_memory,
    env_str,
    env_syslog_address,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        if len(key) < 50:
            raise ImproperlyConfigured("SECRET_KEY: must be at least 50 characters")
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY: required in production mode (DEBUG is off). "
            "Set SECRET_KEY or SECRET_KEY_FILE; see docs/configuration.md."
        )
    # Development only: one random key per checkout, kept out of git.
    key_file = BASE_DIR / ".secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS: required in production mode (comma-separated host names)")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
PUBLIC_BASE_URL = env_url("PUBLIC_BASE_URL", "http://127.0.0.1:8000", schemes=("http", "https"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "guardian",
    "auditlog",
    "audit",
    "accounts",
    "validation",
    "access",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.OrganizationScopeMiddleware",
    "accounts.middleware.SessionLimitMiddleware",
    "accounts.middleware.RequireStaffMFAMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "audit.middleware.FieldHistoryMiddleware",  # django-auditlog's, agreeing with security events
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
    {
        # The live verification fragment only (config/jinja2.py says why).
        "NAME": "jinja2",
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates" / "jinja2"],
        "APP_DIRS": False,
        "OPTIONS": {
            "environment": "config.jinja2.environment",
            "autoescape": True,
            "context_processors": ["django.contrib.messages.context_processors.messages"],
        },
    },
]

# --- Database and broker -------------------------------------------------------
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server, the worker and beat share the file without "database is locked".
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Django's backend, its health check asking the server only when the socket is not quiet.
    DATABASES["default"]["ENGINE"] = "config.postgresql"
    # Server-side binding lets psycopg prepare a statement after its 5th run on a
    # connection, so PostgreSQL stops re-planning the scoped joins of every request.
    if env_bool("DATABASE_PREPARED_STATEMENTS", True):
        DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_url("REDIS_URL", None, schemes=("redis", "rediss"))
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CACHES = {"default": {"BACKEND": "config.cache.PooledClientRedisCache", "LOCATION": REDIS_URL}}
else:
    # No server needed: kombu's filesystem transport carries tasks between the real
    # web, worker and beat processes; a file cache is shared by all three.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.2,  # seconds; a challenge leaves for the phone without a noticeable wait
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
CELERY_BROKER_URL = (
    env_url("CELERY_BROKER_URL", CELERY_BROKER_URL, schemes=("redis", "rediss", "amqp", "amqps", "filesystem"))
    or CELERY_BROKER_URL
)
if CELERY_BROKER_URL.startswith("filesystem"):
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"  # each message written whole before it is seen
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "config.broker:RedisTransport"  # one redis-py client per pool
    if CELERY_BROKER_URL.startswith("rediss://"):
        # kombu takes TLS from these options, not from the scheme (told nothing, it used TLS
        # without checking the certificate). Checked against the system's CAs, as the cache does.
        CELERY_BROKER_USE_SSL = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The worker's tasks wait on Twilio, SMTP and the database far more than they compute, so
# one process runs them in a pool of threads (`--concurrency` of them): no hand-over of each
# task between processes, about a fifth less CPU per text sent (docs/benchmarks.md).
CELERY_WORKER_POOL = "threads"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"

# --- Authentication: allauth with mandatory MFA ---------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "accounts.backends.ModelBackend",
    "accounts.backends.AuthenticationBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_ADAPTER = "accounts.adapters.PortalAccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_REAUTHENTICATION_TIMEOUT = 300
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "confirm_email": "1/3m/key",
}
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Helpdesk portal] "
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "Helpdesk portal")
# No drift window: allauth remembers a used code for one period, so a wider window would allow replay.
MFA_TOTP_TOLERANCE = 0
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
MFA_PASSKEY_LOGIN_ENABLED = False

# Sessions live in the cache (Redis in production, the shared file cache in development):
# every request renews the idle limit, which must not cost a database write.
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
# Idle limit (accounts.middleware.SessionLimitMiddleware): 30 minutes without a request.
SESSION_IDLE_LIMIT = timedelta(minutes=env_int("SESSION_IDLE_MINUTES", 30, minimum=5, maximum=240))
# The store keeps a session a little longer than the idle limit, so the middleware sees
# it end (and records that) instead of finding it silently gone.
SESSION_COOKIE_AGE = int(SESSION_IDLE_LIMIT.total_seconds()) + 300
# Saved when it changes; SessionLimitMiddleware touches it at most once a minute, which
# also renews the store's expiry (the cookie itself ends with the browser).
SESSION_SAVE_EVERY_REQUEST = False
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Absolute limit, enforced by accounts.middleware.SessionLimitMiddleware.
SESSION_ABSOLUTE_LIMIT = timedelta(hours=env_int("SESSION_ABSOLUTE_HOURS", 12, minimum=1, maximum=24))
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True

GUARDIAN_RAISE_403 = False
GUARDIAN_RENDER_403 = False
ANONYMOUS_USER_NAME = None

# --- Security headers ------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # a load balancer's plain-HTTP check on the web port
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
# Behind a reverse proxy that sets these headers (and strips what clients send).
AUDIT_TRUST_X_FORWARDED_FOR = env_bool("TRUST_X_FORWARDED_FOR", False)
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Email -----------------------------------------------------------------------
_email = env_email("EMAIL_URL", "consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
for _key in ("EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS", "EMAIL_USE_SSL"):
    if _key in _email:
        globals()[_key] = _email[_key]
if EMAIL_BACKEND.endswith("filebased.EmailBackend"):
    EMAIL_FILE_PATH = _email.get("EMAIL_FILE_PATH") or str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "helpdesk-portal@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Twilio (SMS). Unset: the development outbox, never in production mode ----------
TWILIO_ACCOUNT_SID = env_str("TWILIO_ACCOUNT_SID")
TWILIO_AUTH_TOKEN = env_str("TWILIO_AUTH_TOKEN")
TWILIO_FROM_NUMBER = env_str("TWILIO_FROM_NUMBER")
TWILIO_MESSAGING_SERVICE_SID = env_str("TWILIO_MESSAGING_SERVICE_SID")
TWILIO_API_BASE_URL = env_url("TWILIO_API_BASE_URL", None, schemes=("http", "https"))
_twilio_parts = [TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN]
if any(_twilio_parts) and not all(_twilio_parts):
    raise ImproperlyConfigured("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN: set both or neither")
if TWILIO_ACCOUNT_SID and not (TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID):
    raise ImproperlyConfigured("TWILIO_FROM_NUMBER: set it (or TWILIO_MESSAGING_SERVICE_SID) when Twilio is configured")
SMS_DEV_OUTBOX = not TWILIO_ACCOUNT_SID
if SMS_DEV_OUTBOX and not DEBUG:
    raise ImproperlyConfigured(
        "TWILIO_ACCOUNT_SID: production mode needs Twilio; the development SMS outbox is off there"
    )

# --- Caller verification (DESIGN.md security parameters; hard caps in validation.params) --
VERIFICATION_CODE_TTL_SECONDS = env_int("VERIFICATION_CODE_TTL_SECONDS", 300, minimum=60, maximum=600)
VERIFICATION_PUSH_TTL_SECONDS = env_int("VERIFICATION_PUSH_TTL_SECONDS", 120, minimum=30, maximum=120)
VERIFICATION_REQUEST_TTL_MINUTES = env_int("VERIFICATION_REQUEST_TTL_MINUTES", 30, minimum=5, maximum=120)
VERIFICATION_MAX_ATTEMPTS = env_int("VERIFICATION_MAX_ATTEMPTS", 5, minimum=1, maximum=5)
VERIFICATION_FAILURE_CAP = env_int("VERIFICATION_FAILURE_CAP", 20, minimum=3, maximum=20)
VERIFICATION_CONTACT_COOLDOWN_DAYS = env_int("VERIFICATION_CONTACT_COOLDOWN_DAYS", 7, minimum=7, maximum=90)
VERIFICATION_ENROLLMENT_TTL_MINUTES = env_int("VERIFICATION_ENROLLMENT_TTL_MINUTES", 15, minimum=5, maximum=60)
# Send limits (validation.services.limits): messages (challenges, enrolment links) per window.
VERIFICATION_SEND_LIMIT_PERSON = env_int("VERIFICATION_SEND_LIMIT_PERSON", 3, minimum=1, maximum=3)  # per 10 min
VERIFICATION_SEND_LIMIT_TECHNICIAN = env_int("VERIFICATION_SEND_LIMIT_TECHNICIAN", 30, minimum=1, maximum=500)  # per h
VERIFICATION_SEND_LIMIT_DESTINATION = env_int("VERIFICATION_SEND_LIMIT_DESTINATION", 5, minimum=1, maximum=20)  # per h
VERIFICATION_SEND_LIMIT_GLOBAL_MINUTE = env_int("VERIFICATION_SEND_LIMIT_GLOBAL_MINUTE", 60, minimum=1, maximum=10000)
VERIFICATION_SEND_LIMIT_GLOBAL_HOUR = env_int("VERIFICATION_SEND_LIMIT_GLOBAL_HOUR", 1000, minimum=1, maximum=100000)

# --- Just-In-Time access (DESIGN.md; hard caps in access.params) -----------------------
ACCESS_REQUEST_REVIEW_HOURS = env_int("ACCESS_REQUEST_REVIEW_HOURS", 24, minimum=1, maximum=168)
ACCESS_ACTIVATION_WINDOW_HOURS = env_int("ACCESS_ACTIVATION_WINDOW_HOURS", 24, minimum=1, maximum=168)
ACCESS_BREAK_GLASS_MAX_MINUTES = env_int("ACCESS_BREAK_GLASS_MAX_MINUTES", 30, minimum=5, maximum=60)
ACCESS_REAUTH_MAX_AGE_SECONDS = env_int("ACCESS_REAUTH_MAX_AGE_SECONDS", 300, minimum=30, maximum=900)
# Access hygiene (docs/access.md "Hygiene"): inactive staff accounts, access review campaigns.
STAFF_INACTIVE_LOCK_DAYS = env_int("STAFF_INACTIVE_LOCK_DAYS", 45, minimum=7, maximum=365)
# 0 turns the automatic (beat) campaigns off; org admins can still start one.
ACCESS_REVIEW_INTERVAL_DAYS = env_int("ACCESS_REVIEW_INTERVAL_DAYS", 90, minimum=0, maximum=366)
ACCESS_REVIEW_DEADLINE_DAYS = env_int("ACCESS_REVIEW_DEADLINE_DAYS", 14, minimum=1, maximum=90)
# Gated helpdesk actions: the directory connector of organisations without their own choice
# (access.DirectoryConnectorConfig, set by superusers in the admin). Checked at start-up.
DIRECTORY_CONNECTOR_DEFAULT = env_str("DIRECTORY_CONNECTOR_DEFAULT", "record_only") or "record_only"

# --- Directory -------------------------------------------------------------------
DIRECTORY_DEFAULT_REGION = (env_str("DIRECTORY_DEFAULT_REGION", "US") or "US").upper()
if DIRECTORY_DEFAULT_REGION not in phonenumbers.SUPPORTED_REGIONS:
    raise ImproperlyConfigured(
        f"DIRECTORY_DEFAULT_REGION: {DIRECTORY_DEFAULT_REGION!r} is not a region code such as US or GB"
    )
DIRECTORY_IMPORT_MAX_BYTES = env_int("DIRECTORY_IMPORT_MAX_MB", 50, minimum=1, maximum=500) * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Static files, i18n ------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
LANGUAGE_CODE = "en-gb"  # dates and numbers in British formats
TIME_ZONE = "UTC"
# The portal is in English only: no translation machinery per string. Django's own messages
# stay in its English (LANGUAGE_CODE still picks the en-GB formats); measured in
# docs/benchmarks.md (each rendered date or number asked for the active language).
USE_I18N = False
USE_TZ = True

# --- Audit: security events forwarded to a SIEM as JSON lines (audit.forwarding) ------------
AUDIT_FORWARD_FILE = env_str("AUDIT_FORWARD_FILE")
AUDIT_FORWARD_SYSLOG = env_syslog_address("AUDIT_FORWARD_SYSLOG")
AUDIT_FORWARD_SYSLOG_FACILITY = env_str("AUDIT_FORWARD_SYSLOG_FACILITY", "local0")
if AUDIT_FORWARD_SYSLOG_FACILITY not in SysLogHandler.facility_names:
    raise ImproperlyConfigured(
        f"AUDIT_FORWARD_SYSLOG_FACILITY: {AUDIT_FORWARD_SYSLOG_FACILITY!r} is not a syslog facility such as local0"
    )
_audit_handlers: dict[str, dict] = {}
if AUDIT_FORWARD_FILE:
    # WatchedFileHandler reopens the file after logrotate moves it.
    _audit_handlers["audit_file"] = {
        "class": "logging.handlers.WatchedFileHandler",
        "filename": AUDIT_FORWARD_FILE,
        "encoding": "utf-8",
        "formatter": "audit_line",
        "filters": ["redact_link_tokens"],
    }
if AUDIT_FORWARD_SYSLOG:
    _audit_handlers["audit_syslog"] = {
        "class": "audit.log_handlers.SiemSysLogHandler",
        "facility": AUDIT_FORWARD_SYSLOG_FACILITY,
        "formatter": "audit_line",
        "filters": ["redact_link_tokens"],
        **AUDIT_FORWARD_SYSLOG,
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "audit_line": {"format": "%(message)s"},
    },
    # One-time link tokens in paths (/r/<token>/, /e/<token>/) never reach a log.
    "filters": {"redact_link_tokens": {"()": "validation.log_filters.RedactLinkTokens"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_link_tokens"]},
        **_audit_handlers,
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Django's own handlers for these bypass the filter: route them through ours instead.
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        # Security events for a SIEM; with nowhere to send them, above INFO so none is even serialised.
        "audit.events": {
            "handlers": list(_audit_handlers),
            "level": "INFO" if _audit_handlers else "CRITICAL",
            "propagate": False,
        },
    },
}


# --- Audit: the tamper-evident security event log (docs/audit.md) ----------------------------
def _audit_secret(name: str, value: bytes | None, purpose: str, what: str) -> bytes:
    """A key of the event log: required in production mode; derived from SECRET_KEY in development."""
    if value is not None:
        return value
    if not DEBUG:
        raise ImproperlyConfigured(
            f"{name}: required in production mode (DEBUG is off): {what}. Set {name} or {name}_FILE; see docs/audit.md."
        )
    return hashlib.sha256(f"helpdesk-portal:{purpose}:{SECRET_KEY}".encode()).digest()


def _audit_hmac_keys(name: str, *, single: bool = False) -> list[bytes]:
    keys = [env_str(name)] if single else env_list(name, [])
    keys = [key for key in keys if key]
    if any(len(key) < 32 for key in keys):
        raise ImproperlyConfigured(f"{name}: must be at least 32 characters")
    if SECRET_KEY in keys:
        raise ImproperlyConfigured(f"{name}: use a key of its own, not SECRET_KEY")
    return [key.encode() for key in keys]


# HMAC-SHA256 key of the hash chain, never stored in the database; a rotated-out key moves to
# AUDIT_HMAC_RETIRED_KEYS (comma-separated) so that older events still verify.
AUDIT_HMAC_KEY = _audit_secret(
    "AUDIT_HMAC_KEY",
    next(iter(_audit_hmac_keys("AUDIT_HMAC_KEY", single=True)), None),
    "audit-hmac",
    "the HMAC key of the security event log's hash chain",
)
AUDIT_HMAC_RETIRED_KEYS = _audit_hmac_keys("AUDIT_HMAC_RETIRED_KEYS")
# Ed25519 key that signs chain checkpoints (32 raw bytes); retired public keys still verify old ones.
AUDIT_SIGNING_KEY = _audit_secret(
    "AUDIT_SIGNING_KEY",
    env_ed25519_private_key("AUDIT_SIGNING_KEY"),
    "audit-signing",
    "the Ed25519 private key that signs the security event log's checkpoints",
)
AUDIT_SIGNING_RETIRED_PUBLIC_KEYS = env_ed25519_public_keys("AUDIT_SIGNING_RETIRED_PUBLIC_KEYS")
# Copies of every checkpoint outside the database: appended to a file and/or POSTed as JSON.
AUDIT_CHECKPOINT_FILE = env_str("AUDIT_CHECKPOINT_FILE")
AUDIT_CHECKPOINT_URL = env_url("AUDIT_CHECKPOINT_URL", None, schemes=("http", "https"))
AUDIT_CHECKPOINT_TOKEN = env_str("AUDIT_CHECKPOINT_TOKEN")
# A process runs the chain's sealer after a commit at most this often (milliseconds); one run
# seals every process's events, and the beat task seals every 3 s (docs/audit.md).
AUDIT_SEAL_INTERVAL_MS = env_int("AUDIT_SEAL_INTERVAL_MS", 1000, minimum=0, maximum=2000)
# PostgreSQL's work_mem for the duration of an export's COPY ("1GB"); unset, the server's. The
# export sorts every formatted row: when they fit in memory nothing spills to disk, and JSON
# lines stream about a third faster (docs/benchmarks.md), at that much server memory per
# process of each running export.
AUDIT_EXPORT_WORK_MEM = env_pg_memory("AUDIT_EXPORT_WORK_MEM")
# audit_retention refuses to drop events younger than this (PCI DSS 10.5.1 asks for a year).
AUDIT_RETENTION_MIN_DAYS = env_int("AUDIT_RETENTION_MIN_DAYS", 365, minimum=1)
