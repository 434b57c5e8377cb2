"""A loaded process's long-lived objects, left out of Python's cyclic garbage collector.

A web or worker process holds 90,000-160,000 objects that live as long as it does: Django,
the apps, the URLconf and its views. Python's full collections walk every one of them each
time enough objects have reached the oldest generation: 40-60 ms a walk on the 2-core
benchmark machine, about once every few hundred round trips (docs/benchmarks.md).
``gc.freeze()`` moves what is alive now to a permanent generation that collections skip;
whatever requests and tasks allocate later is collected as before.
"""

from __future__ import annotations

import gc

from django.urls import get_resolver


def freeze_loaded() -> int:
    """Load what every request needs that Django loads lazily (the URLconf imports every
    view), collect what loading left behind, then freeze the rest. Returns how many objects
    are frozen."""
    get_resolver().url_patterns  # noqa: B018 - the import of every view
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
