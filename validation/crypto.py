"""Keyed hashing and sealing for verification secrets. Nothing here is stored in clear.

- Codes are kept as HMAC-SHA256 bound to their challenge and compared in constant time.
- Link nonces are kept as SHA-256 (the link itself is also signed, see ``validation.links``).
- End users' TOTP keys are sealed with Fernet under a key derived from SECRET_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet
from django.conf import settings


def _derived_key(purpose: str) -> bytes:
    return hashlib.sha256(f"helpdesk-portal:{purpose}:{settings.SECRET_KEY}".encode()).digest()


def code_generate(digits: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def code_hmac(*, challenge_id: int, code: str) -> str:
    message = f"{challenge_id}:{code}".encode()
    return hmac.new(_derived_key("challenge-code"), message, hashlib.sha256).hexdigest()


def code_matches(*, challenge_id: int, code: str, stored_hmac: str) -> bool:
    if not stored_hmac:
        return False
    return hmac.compare_digest(code_hmac(challenge_id=challenge_id, code=code), stored_hmac)


def nonce_generate() -> str:
    return secrets.token_urlsafe(18)


def nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derived_key("person-totp-key")))


def seal(secret: bytes) -> str:
    return _fernet().encrypt(secret).decode()


def unseal(token: str) -> bytes:
    return _fernet().decrypt(token.encode())


def destination_hmac(address: str) -> str:
    """A keyed hash of a phone number (E.164) or email address, so that sends to one
    destination can be counted without storing it. Emails compare case-insensitively."""
    normalised = address.strip().lower()
    return hmac.new(_derived_key("send-destination"), normalised.encode(), hashlib.sha256).hexdigest()
