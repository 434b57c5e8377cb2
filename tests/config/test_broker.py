"""The brokers' transports (config/broker.py). The development broker (kombu's filesystem
transport, `make run` without Redis): a worker never sees a message before it is written whole
(celery/kombu#1551 stopped the worker). Redis: one redis-py client per connection pool."""

import os
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


def test_the_development_settings_use_it_and_redis_urls_the_pooled_one():
    code = "from django.conf import settings; print(getattr(settings, 'CELERY_BROKER_TRANSPORT', None))"
    run = [sys.executable, "-c", f"import django; django.setup(); {code}"]

    def transport(**env):
        base = {"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true", "PATH": "/usr/bin:/bin"}
        return subprocess.run(run, env={**base, **env}, capture_output=True, text=True, check=True).stdout.strip()

    assert transport() == "config.broker:Transport"
    assert transport(REDIS_URL="redis://127.0.0.1:6379/15") == "config.broker:RedisTransport"
    assert transport(REDIS_URL="rediss://127.0.0.1:6380/15") == "config.broker:RedisTransport"


def test_a_tls_broker_checks_the_servers_certificate():
    """Told nothing, kombu connected to a rediss:// broker without checking its certificate
    (CERT_NONE, with a warning); the connection Celery builds now requires a valid one."""
    code = (
        "import django; django.setup(); from config.celery import app;"
        " c = app.connection_for_write(); print(c.transport_cls, c.ssl)"
    )

    def connection(**env):
        base = {"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true", "PATH": "/usr/bin:/bin"}
        result = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert connection(REDIS_URL="rediss://cache.example:6380/0") == (
        "config.broker:RedisTransport {'ssl_cert_reqs': <VerifyMode.CERT_REQUIRED: 2>}"
    )
    assert connection(REDIS_URL="redis://127.0.0.1:6379/15") == "config.broker:RedisTransport False"


# --- Redis: one redis-py client per connection pool ------------------------------------

needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (CI sets it)")


@pytest.fixture
def redis_channel():
    with Connection(os.environ["REDIS_URL"], transport="config.broker:RedisTransport") as connection:
        channel = connection.channel()
        yield channel
        channel.client.delete("portal-test-queue")


@needs_redis
def test_a_redis_channel_publishes_and_acknowledges_through_one_client(redis_channel):
    """kombu builds a new redis-py client for every command it sends outside its consumer
    (each publish, each acknowledgement's bookkeeping); this channel keeps one per pool, and
    messages go through it as through kombu's own."""
    from kombu import Producer, Queue

    created = []
    real_client_class = redis_channel.Client

    def counting_client(**kwargs):
        created.append(kwargs)
        return real_client_class(**kwargs)

    redis_channel.Client = counting_client
    queue = Queue("portal-test-queue", channel=redis_channel)
    queue.declare()
    producer = Producer(redis_channel)
    for n in range(3):
        producer.publish({"n": n}, routing_key="portal-test-queue")
    bodies = []
    for _ in range(3):
        message = queue.get(no_ack=False)
        bodies.append(message.payload["n"])
        message.ack()
    assert sorted(bodies) == [0, 1, 2]
    assert queue.get() is None
    assert len(created) == 1  # kombu's own channel: one for each publish, get and ack
    assert not redis_channel.client.hlen(redis_channel.unacked_key)  # every ack's bookkeeping done


@needs_redis
def test_a_redis_channel_builds_a_new_client_for_a_new_pool(redis_channel):
    client = redis_channel._create_client()
    assert redis_channel._create_client() is client
    assert client.connection_pool is redis_channel.pool
    redis_channel._disconnect_pools()  # what kombu does after a fork and on closing
    renewed = redis_channel._create_client()
    assert renewed is not client and renewed.connection_pool is redis_channel.pool
    assert renewed.ping()
    assert redis_channel._create_client(asynchronous=True) is not renewed  # the consumer's own, as kombu keeps it
