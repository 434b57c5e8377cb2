"""kombu's transports as the portal runs them.

Without Redis (`make run`): kombu's filesystem transport, with each message written whole
before a worker can see it. kombu's ``_put`` creates the message file under its final name and
then writes it, while a worker polling the folder moves and reads every file with that name (it
does not take the writer's lock). A worker that came by between the two read an empty file and
stopped on a JSONDecodeError, taking the whole `make run` down with it (seen when beat queued
several tasks at once; celery/kombu#1551). Here the message is written under a name no queue
reads, then renamed into place: a rename within a folder is atomic.

With Redis (``redis://``, ``rediss://``): kombu's Redis transport, keeping one redis-py client
per connection pool for its commands, as ``config.cache`` does for the cache. kombu builds a
new client for each publish and for each acknowledgement's bookkeeping, and redis-py fills a
table of ~170 response callbacks in every one (docs/benchmarks.md). A client is thread-safe
and only wraps its pool (the worker's pool of threads shares it), so one per pool serves
every command. (TLS comes from ``CELERY_BROKER_USE_SSL``, which the settings give
``rediss://``.)
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, redis
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PARTIAL_SUFFIX = ".part"  # "<queue>.msg.part": never "<queue>.msg", the names a worker reads


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put ``payload`` onto ``queue``, named as kombu names it (the time first, so that
        the oldest is read first)."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        try:
            with open(path + PARTIAL_SUFFIX, "wb") as partial:
                partial.write(str_to_bytes(dumps(payload)))
            os.replace(path + PARTIAL_SUFFIX, path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


class RedisChannel(redis.Channel):
    _pooled_client = None

    def _create_client(self, asynchronous=False):
        """The client of the channel's pool (a new pool, after a fork or a reconnection,
        gets a new client); the asynchronous one, which kombu builds once, as kombu does."""
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._pooled_client
        if client is None or client.connection_pool is not self.pool:
            client = self._pooled_client = super()._create_client()
        return client


class RedisTransport(redis.Transport):
    Channel = RedisChannel
