"""Typed readers for environment variables.

Each reader fails loudly: a malformed value raises ImproperlyConfigured naming the
variable, so the portal stops at start-up instead of running half-configured.
A secret may also be given as ``<NAME>_FILE`` pointing at a file that holds it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import socket
from pathlib import Path
from typing import overload
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


_PG_MEMORY = re.compile(r"([1-9][0-9]{0,9})(kB|MB|GB)")
_PG_MEMORY_KB = {"kB": 1, "MB": 1024, "GB": 1024 * 1024}


def env_pg_memory(name: str) -> str | None:
    """A PostgreSQL memory size ("64MB", "1GB"; units kB, MB, GB) within what work_mem
    takes (64 kB to 2 TB), or None when unset."""
    value = env_str(name)
    if value is None:
        return None
    match = _PG_MEMORY.fullmatch(value.strip())
    if match is None or not 64 <= int(match[1]) * _PG_MEMORY_KB[match[2]] <= 2147483647:
        raise ImproperlyConfigured(f"{name}: expected a PostgreSQL memory size such as 64MB or 1GB, got {value!r}")
    return match[0]


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


@overload
def env_url(name: str, default: str, *, schemes: tuple[str, ...]) -> str: ...
@overload
def env_url(name: str, default: None, *, schemes: tuple[str, ...]) -> str | None: ...
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


def env_syslog_address(name: str) -> dict | None:
    """A syslog destination as SysLogHandler arguments: ``udp://host:514``,
    ``tcp://host:601`` or the path of a Unix socket (``/dev/log``). Unset: None."""
    value = env_str(name)
    if value is None:
        return None
    if value.startswith("/"):
        return {"address": value}
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("udp", "tcp") or not parts.hostname or port is None:
        raise ImproperlyConfigured(
            f"{name}: expected udp://host:port, tcp://host:port or a socket path such as /dev/log"
        )
    socktype = socket.SOCK_STREAM if parts.scheme == "tcp" else socket.SOCK_DGRAM
    return {"address": (parts.hostname, port), "socktype": socktype}


def _base64_bytes(name: str, value: str, size: int) -> bytes:
    try:
        raw = base64.b64decode(value.strip() + "=" * (-len(value.strip()) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise ImproperlyConfigured(f"{name}: expected base64 of {size} bytes")
    return raw


def env_ed25519_private_key(name: str) -> bytes | None:
    """An Ed25519 private key, as PEM (``openssl genpkey -algorithm ed25519``) or base64 of
    its 32 raw bytes; returned as the 32 raw bytes. Unset: None."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    value = env_str(name)
    if value is None:
        return None
    if not value.lstrip().startswith("-----BEGIN"):
        return _base64_bytes(name, value, 32)
    try:
        key = serialization.load_pem_private_key(value.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{name}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{name}: expected an Ed25519 key, got {type(key).__name__}")
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def env_ed25519_public_keys(name: str) -> list[bytes]:
    """Comma-separated Ed25519 public keys, each base64 of its 32 raw bytes."""
    return [_base64_bytes(name, item, 32) for item in env_list(name, [])]
