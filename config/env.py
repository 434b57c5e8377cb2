"""Typed readers for environment variables.

Each reader fails loudly: a malformed value raises ImproperlyConfigured naming the
variable, so the portal stops at start-up instead of running half-configured.
A secret may also be given as ``<NAME>_FILE`` pointing at a file that holds it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_name}: {exc.strerror}") from exc
    return os.environ.get(name)


def env_str(name: str, default: str | None = None) -> str | None:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}: expected true or false, got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a whole number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}: must be at most {maximum}, got {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_database(name: str, default: str) -> dict:
    value = env_str(name, default)
    assert value is not None
    try:
        config = environ.Env.db_url_config(value)
    except (ValueError, KeyError, ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(f"{name}: not a database URL this portal understands ({exc})") from None
    if config.get("ENGINE") not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
        raise ImproperlyConfigured(f"{name}: use a postgres:// or sqlite:/// URL")
    return config


def env_url(name: str, default: str | None, *, schemes: tuple[str, ...]) -> str | None:
    value = env_str(name, default)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or (parts.scheme != "filesystem" and not parts.netloc):
        raise ImproperlyConfigured(f"{name}: expected a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return value


def env_email(name: str, default: str) -> dict:
    value = env_str(name, default)
    assert value is not None
    try:
        return environ.Env.email_url_config(value)
    except (ValueError, KeyError, ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(f"{name}: not an email URL this portal understands ({exc})") from None
