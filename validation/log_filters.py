"""Keep end users' one-time link tokens out of logs.

The token is the path segment after /r/, /e/ and /a/ (the approver's pages), so Django's request
logging ("Not Found: /r/...") and the development server's access log would write it.
This filter, attached to every handler in settings.LOGGING, rewrites such paths to
/r/[redacted]/ in the final message.
"""

from __future__ import annotations

import logging
import re

_LINK_PATH = re.compile(r"/(r|e|a)/[^/\s\"']+")


def redact_link_tokens(text: str) -> str:
    return _LINK_PATH.sub(r"/\1/[redacted]", text)


class RedactLinkTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_link_tokens(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
