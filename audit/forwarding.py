"""Forwarding of security events to a SIEM: one JSON line per event on the ``audit.events``
logger, written once the event is committed and sealed into the hash chain.

The lines come from ``audit.signals.security_events_sealed`` (connected in
``AuditConfig.ready``), which the sealer sends after the transaction that chained the events
commits. So an event whose own transaction rolled back is never forwarded (it was never
sealed), every event is forwarded once (by the process that sealed it), in chain order, and
each line carries the event's ``sequence``, ``previous_hash`` and ``hash``: the SIEM holds a
copy of the chain that can be checked against the database later.

The logger's handlers come from settings (``AUDIT_FORWARD_FILE``, ``AUDIT_FORWARD_SYSLOG``;
docs/configuration.md); with neither set nothing is serialised. A line has the export's
columns (``audit.export.export_columns``), so it never holds more than the event does, and
an event never holds a code, password, token, link or message body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from audit.export import event_as_dict

logger = logging.getLogger("audit.events")


def security_event_line(event: Mapping[str, Any]) -> str:
    """The event (its columns by name) as one line of compact JSON."""
    return json.dumps(event_as_dict(event), ensure_ascii=False, separators=(",", ":"), default=str)


def security_events_forward(sender, events: list[Mapping[str, Any]], **kwargs) -> None:
    """Emit one line per sealed event. Handlers report their own failures
    (``Handler.handleError``), so a SIEM that is down never fails the sealer."""
    if logger.isEnabledFor(logging.INFO):
        for event in events:
            logger.info(security_event_line(event))
