"""The syslog handler for SIEM forwarding (``AUDIT_FORWARD_SYSLOG``).

Loaded by Django's logging set-up before the apps are ready, so it imports nothing of the
portal. Unlike the standard SysLogHandler it lets the portal start while the collector is
down, reconnects a dropped TCP connection (retrying the line once), and frames TCP
messages with a newline (RFC 6587 non-transparent framing) instead of a NUL.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import socket


class SiemSysLogHandler(logging.handlers.SysLogHandler):
    ident = "portal-audit: "

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.append_nul = False

    def _over_tcp(self) -> bool:
        return not self.unixsocket and self.socktype == socket.SOCK_STREAM

    def createSocket(self):  # noqa: N802 - the standard library's name
        try:
            super().createSocket()
        except OSError:
            self.socket = None  # the collector is not up yet: connect on the next line

    def emit(self, record: logging.LogRecord) -> None:
        if not self._over_tcp():
            super().emit(record)
            return
        try:
            priority = self.encodePriority(self.facility, self.mapPriority(record.levelname))
            message = f"<{priority}>{self.ident}{self.format(record)}\n".encode()
        except Exception:
            self.handleError(record)
            return
        for attempt in range(2):
            try:
                if self.socket is None:
                    super().createSocket()
                self.socket.sendall(message)
                return
            except OSError:
                self._drop_socket()
                if attempt == 1:
                    self.handleError(record)  # inside the except: it prints this error

    def _drop_socket(self) -> None:
        if self.socket is not None:
            with contextlib.suppress(OSError):
                self.socket.close()
        self.socket = None
