"""The log's keys come from the environment: production mode refuses to start without them."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.config.test_settings import PRODUCTION_ENV, run_manage


@pytest.mark.parametrize("variable", ["AUDIT_HMAC_KEY", "AUDIT_SIGNING_KEY"])
def test_production_mode_refuses_to_start_without_the_key(tmp_path, variable):
    result = run_manage(tmp_path, "check", **{variable: None})
    assert result.returncode != 0
    assert f"{variable}: required in production mode" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AUDIT_HMAC_KEY", "too-short", "AUDIT_HMAC_KEY: must be at least 32 characters"),
        ("AUDIT_HMAC_KEY", PRODUCTION_ENV["SECRET_KEY"], "AUDIT_HMAC_KEY: use a key of its own"),
        ("AUDIT_SIGNING_KEY", "not a key", "AUDIT_SIGNING_KEY: expected base64 of 32 bytes"),
        ("AUDIT_SIGNING_RETIRED_PUBLIC_KEYS", "AAAA", "AUDIT_SIGNING_RETIRED_PUBLIC_KEYS: expected base64"),
    ],
)
def test_a_malformed_key_stops_start_up_and_names_the_variable(tmp_path, variable, value, message):
    result = run_manage(tmp_path, "check", **{variable: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_the_signing_key_can_be_an_openssl_pem_file(tmp_path):
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_file = tmp_path / "audit-signing.pem"
    key_file.write_bytes(pem)
    result = run_manage(tmp_path, "check", AUDIT_SIGNING_KEY=None, AUDIT_SIGNING_KEY_FILE=str(key_file))
    assert result.returncode == 0, result.stderr


def test_development_mode_derives_the_keys(tmp_path):
    result = run_manage(
        tmp_path,
        "check",
        DEBUG="true",
        AUDIT_HMAC_KEY=None,
        AUDIT_SIGNING_KEY=None,
        TWILIO_ACCOUNT_SID=None,
        TWILIO_AUTH_TOKEN=None,
    )
    assert result.returncode == 0, result.stderr
