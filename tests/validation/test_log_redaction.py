import logging

import pytest

from validation.log_filters import RedactLinkTokens, redact_link_tokens


def test_link_tokens_are_redacted_from_paths():
    assert redact_link_tokens("Not Found: /r/abc123:1xyz:sig/") == "Not Found: /r/[redacted]/"
    assert redact_link_tokens('"GET /e/tok-en_1:x:y/ HTTP/1.1" 410') == '"GET /e/[redacted]/ HTTP/1.1" 410'
    assert redact_link_tokens("/people/12/verify/") == "/people/12/verify/"


@pytest.mark.django_db
def test_django_request_log_of_a_bad_link_holds_no_token(client, caplog):
    token = "aaaaaaaaaaaaaaaaaaaaaaaa:1vXyZ:forgedsignature"
    with caplog.at_level(logging.WARNING, logger="django.request"):
        client.get(f"/r/{token}/")
    record = next(r for r in caplog.records if r.name == "django.request")
    RedactLinkTokens().filter(record)
    assert token not in record.getMessage() and "/r/[redacted]/" in record.getMessage()


def test_every_configured_handler_redacts(settings):
    for name, handler in settings.LOGGING["handlers"].items():
        assert "redact_link_tokens" in handler.get("filters", []), name
