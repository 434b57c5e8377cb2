"""The keys of the event log, read from settings (which read them from the environment).

Nothing here is ever written to the database. Rows carry a key *fingerprint* (``key_id``)
so that verification picks the right key after a rotation.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings


def hmac_key_id(key: bytes) -> str:
    """A fingerprint of an HMAC key: 16 hex digits of a domain-separated SHA-256."""
    return hashlib.sha256(b"helpdesk-portal/audit-hmac-key-id:" + key).hexdigest()[:16]


def hmac_current() -> tuple[str, bytes]:
    """The key that seals new events, with its fingerprint."""
    key = settings.AUDIT_HMAC_KEY
    return hmac_key_id(key), key


def hmac_keys() -> dict[str, bytes]:
    """Every key that may have sealed an event (current and retired), by fingerprint."""
    keys = [*settings.AUDIT_HMAC_RETIRED_KEYS, settings.AUDIT_HMAC_KEY]
    return {hmac_key_id(key): key for key in keys}


def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(settings.AUDIT_SIGNING_KEY)


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key_bytes(key)).hexdigest()[:16]


def verification_keys() -> dict[str, Ed25519PublicKey]:
    """Public keys that verify checkpoints (current and retired), by fingerprint."""
    keys = [Ed25519PublicKey.from_public_bytes(raw) for raw in settings.AUDIT_SIGNING_RETIRED_PUBLIC_KEYS]
    keys.append(signing_key().public_key())
    return {public_key_id(key): key for key in keys}
