"""kombu's filesystem transport, the broker `make run` uses when there is no Redis, with each
message written whole before a worker can see it.

kombu's ``_put`` creates the message file under its final name and then writes it, while a
worker polling the folder moves and reads every file with that name (it does not take the
writer's lock). A worker that came by between the two read an empty file and stopped on a
JSONDecodeError, taking the whole `make run` down with it (seen when beat queued several tasks
at once; celery/kombu#1551). Here the message is written under a name no queue reads, then
renamed into place: a rename within a folder is atomic.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
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
