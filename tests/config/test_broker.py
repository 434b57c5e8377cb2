"""The development broker (kombu's filesystem transport, `make run` without Redis): a worker
never sees a message before it is written whole (celery/kombu#1551 stopped the worker)."""

import subprocess
import sys
import time
from queue import Empty

import pytest
from kombu import Connection

from config.broker import PARTIAL_SUFFIX


@pytest.fixture
def channel(tmp_path):
    folders = {name: tmp_path / name for name in ("out", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    options = {
        "data_folder_in": str(folders["out"]),
        "data_folder_out": str(folders["out"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
    }
    with Connection("filesystem://", transport="config.broker:Transport", transport_options=options) as connection:
        channel = connection.channel()
        channel.out_folder = folders["out"]
        yield channel


def test_a_worker_polling_while_a_message_is_written_finds_nothing(channel, monkeypatch):
    """A worker that polls between the file's creation and its bytes (kombu's own transport
    had the file under its final name, empty, and the worker's JSON decoding failed) finds
    no message; the message is there whole once written."""
    import config.broker

    seen_mid_write = []

    def dumps_while_a_worker_polls(payload):
        assert list(channel.out_folder.iterdir()), "the file being written exists"
        try:
            seen_mid_write.append(channel._get("celery"))
        except Empty:
            seen_mid_write.append(None)
        return real_dumps(payload)

    real_dumps = config.broker.dumps
    monkeypatch.setattr(config.broker, "dumps", dumps_while_a_worker_polls)
    channel._put("celery", {"body": "whole"})
    assert seen_mid_write == [None]
    assert channel._get("celery") == {"body": "whole"}


def test_a_message_put_is_read_whole_and_once(channel):
    channel._put("celery", {"body": "hello", "n": 1})
    time.sleep(0.005)  # names start with the millisecond (as kombu's): within one, the order is not kept
    channel._put("celery", {"body": "again", "n": 2})
    assert not list(channel.out_folder.glob(f"*{PARTIAL_SUFFIX}"))
    assert channel._get("celery") == {"body": "hello", "n": 1}  # oldest first
    assert channel._get("celery") == {"body": "again", "n": 2}
    with pytest.raises(Empty):
        channel._get("celery")


def test_the_development_settings_use_it_and_redis_does_not():
    code = "from django.conf import settings; print(getattr(settings, 'CELERY_BROKER_TRANSPORT', None))"
    run = [sys.executable, "-c", f"import django; django.setup(); {code}"]

    def transport(**env):
        base = {"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true", "PATH": "/usr/bin:/bin"}
        return subprocess.run(run, env={**base, **env}, capture_output=True, text=True, check=True).stdout.strip()

    assert transport() == "config.broker:Transport"
    assert transport(REDIS_URL="redis://127.0.0.1:6379/15") == "None"
