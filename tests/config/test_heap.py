"""A loaded web or worker process leaves its long-lived objects out of the cyclic garbage
collector's walks (config/heap.py)."""

import gc
import os
import subprocess
import sys
from pathlib import Path

from celery.signals import worker_process_init, worker_ready

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import gc, sys
import config.wsgi
print(gc.get_freeze_count(), "validation.views.technician" in sys.modules)
"""


def test_a_gunicorn_worker_freezes_what_it_loaded_views_included():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    frozen, views_loaded = out.stdout.split()
    assert int(frozen) > 10_000 and views_loaded == "True"


def test_the_celery_worker_freezes_once_ready_and_each_prefork_child_once_started():
    try:
        for signal in (worker_ready, worker_process_init):
            gc.unfreeze()
            signal.send(sender=None)
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
