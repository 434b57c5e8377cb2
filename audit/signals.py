"""Signals of the event log."""

from django.dispatch import Signal

# Sent after the transaction that sealed events commits, with ``events``: a list of dicts,
# one per event in chain order, holding every column (``audit.chain.ROW_FIELDS``).
security_events_sealed = Signal()
