"""A fake of Twilio's Messages REST API on 127.0.0.1, for the real ``twilio`` client.

It answers ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` the way Twilio does:
HTTP basic auth with the account SID and auth token (401 and Twilio's error JSON
otherwise), a form-encoded body, 201 with a message resource. Every request is recorded
(headers and parsed form) so tests can assert exactly what was sent. ``fail_next`` makes
the next requests fail with a Twilio error code (400, permanent) or a 429/500/503
(transient). With ``status_callbacks=True`` it also plays Twilio's side of delivery:
it POSTs "sent" then "delivered" to the message's StatusCallback URL, signed with
``twilio.request_validator.RequestValidator``, as long as that URL is on this machine.

    with FakeTwilioApi(account_sid=sid, auth_token=token) as api:
        settings.TWILIO_API_BASE_URL = api.base_url
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

# Messages of the errors the fake can be told to return (https://www.twilio.com/docs/api/errors).
ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "The 'To' number is not a valid phone number.",
    21214: "'To' phone number cannot be reached.",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number.",
    21602: "Message body is required.",
    21603: "The 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable via SMS.",
    21614: "'To' number is not a valid mobile number",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
}
# Transient HTTP statuses and the Twilio code that comes with them.
TRANSIENT_CODES = {429: 20429, 500: 20500, 503: 20503}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]
    raw_body: str
    response_status: int
    response: dict
    peer: tuple[str, int] = ("", 0)  # the client's address and port: one per connection

    def value(self, name: str) -> str | None:
        """The single value of form field ``name`` (None when absent)."""
        values = self.form.get(name)
        if values is None:
            return None
        assert len(values) == 1, f"{name} was sent {len(values)} times"
        return values[0]

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return user, password


@dataclass(frozen=True)
class Failure:
    status: int
    code: int
    message: str


@dataclass
class CallbackResult:
    """A status callback the fake posted (with ``status_callbacks=True``)."""

    url: str
    form: dict[str, str]
    status: int | None = None
    error: str = ""


def twilio_signature(url: str, params, auth_token: str) -> str:
    """X-Twilio-Signature for a POST of ``params`` (a mapping or a list of pairs) to ``url``,
    computed by twilio's own RequestValidator."""
    pairs = list(params.items()) if hasattr(params, "items") else list(params)
    return RequestValidator(auth_token).compute_signature(url, _MultiValues(pairs))


class _MultiValues(dict):
    """The shape RequestValidator reads repeated form fields from (``getlist``)."""

    def __init__(self, pairs):
        super().__init__()
        for name, value in pairs:
            self.setdefault(name, []).append(value)

    def getlist(self, name):
        return self[name]


@dataclass
class _State:
    account_sid: str
    auth_token: str
    status_callbacks: bool
    callback_delay: float
    callback_base_url: str | None
    on_request: Callable[[RecordedRequest], None] | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    next_sids: list[str] = field(default_factory=list)
    callbacks: list[CallbackResult] = field(default_factory=list)
    callback_threads: list[threading.Thread] = field(default_factory=list)


class FakeTwilioApi:
    """The fake server. ``start()``/``stop()`` or use it as a context manager."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        status_callbacks: bool = False,
        callback_delay: float = 0.2,
        callback_base_url: str | None = None,
        on_request: Callable[[RecordedRequest], None] | None = None,
        keep_alive: bool = False,
    ):
        """``callback_delay``: seconds before each status callback (Twilio's are not instant).
        ``callback_base_url``: post callbacks to this scheme and host instead of the
        StatusCallback URL's own (the signature still covers the StatusCallback URL).
        ``on_request``: called with each recorded request, in the server's thread, before
        the answer goes back (a benchmark's clock for "the text reached Twilio").
        ``keep_alive``: HTTP/1.1 with persistent connections, as api.twilio.com answers (a
        benchmark); by default one request per connection, so that a stopped fake is
        unreachable at once for the tests."""
        self._state = _State(account_sid, auth_token, status_callbacks, callback_delay, callback_base_url, on_request)
        self._keep_alive = keep_alive
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------
    def start(self) -> FakeTwilioApi:
        protocol = "HTTP/1.1" if self._keep_alive else "HTTP/1.0"
        handler = type("Handler", (_Handler,), {"state": self._state, "protocol_version": protocol})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-twilio", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in list(self._state.callback_threads):
            thread.join(timeout=10)

    def __enter__(self) -> FakeTwilioApi:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the fake Twilio API is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- what tests read and steer ------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def messages(self) -> list[RecordedRequest]:
        """Requests that created a message (answered 201)."""
        return [r for r in self.requests if r.response_status == 201]

    @property
    def callbacks(self) -> list[CallbackResult]:
        with self._state.lock:
            return list(self._state.callbacks)

    def fail_next(self, count: int = 1, *, code: int | None = None, status: int | None = None) -> None:
        """Answer the next ``count`` message requests with an error: a Twilio ``code`` (HTTP
        400 unless ``status`` says otherwise), or a transient ``status`` (429, 500, 503)."""
        if code is None and status is None:
            raise ValueError("give a Twilio error code or an HTTP status")
        if code is None:
            code = TRANSIENT_CODES.get(status, status)
        status = status or 400
        failure = Failure(status=status, code=code, message=ERROR_MESSAGES.get(code, "Error"))
        with self._state.lock:
            self._state.failures.extend([failure] * count)

    def use_sid_next(self, sid: str) -> None:
        """Give the next created message this sid (to post its callback before it exists)."""
        with self._state.lock:
            self._state.next_sids.append(sid)

    def wait_for_callbacks(self, count: int, *, timeout: float = 10) -> list[CallbackResult]:
        deadline = time.monotonic() + timeout
        while len(self.callbacks) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.callbacks


def _error_json(status: int, code: int, message: str) -> dict:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Handler(BaseHTTPRequestHandler):
    state: _State
    server_version = "FakeTwilio/1.0"
    protocol_version = "HTTP/1.0"  # FakeTwilioApi(keep_alive=...) chooses
    disable_nagle_algorithm = True  # the answer's headers and body leave at once

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass  # request lines would go to stderr; the recorded requests say more

    def do_GET(self):
        self._reply(404, _error_json(404, 20404, ERROR_MESSAGES[20404]))

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length).decode("utf-8", errors="replace")
        form = parse_qs(raw_body, keep_blank_values=True)
        status, payload = self._answer(form)
        recorded = RecordedRequest(
            method="POST",
            path=self.path,
            headers=dict(self.headers.items()),
            form=form,
            raw_body=raw_body,
            response_status=status,
            response=_public(payload),
            peer=self.client_address[:2],
        )
        with self.state.lock:
            self.state.requests.append(recorded)
        if self.state.on_request is not None:
            self.state.on_request(recorded)
        self._reply(status, payload)
        if status == 201 and self.state.status_callbacks and payload.get("status_callback"):
            self._schedule_callbacks(payload)

    def _answer(self, form: dict[str, list[str]]) -> tuple[int, dict]:
        state = self.state
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) != 4 or parts[0] != API_VERSION or parts[1] != "Accounts" or parts[3] != "Messages.json":
            return 404, _error_json(404, 20404, ERROR_MESSAGES[20404])
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        try:
            credentials = base64.b64decode(encoded, validate=True).decode()
        except ValueError:
            credentials = ""
        if scheme.lower() != "basic" or credentials != f"{state.account_sid}:{state.auth_token}":
            return 401, _error_json(401, 20003, ERROR_MESSAGES[20003])
        if parts[2] != state.account_sid:
            return 404, _error_json(404, 20404, ERROR_MESSAGES[20404])
        with state.lock:
            failure = state.failures.pop(0) if state.failures else None
        if failure is not None:
            return failure.status, _error_json(failure.status, failure.code, failure.message)
        one = {name: values[-1] for name, values in form.items()}
        if not one.get("To"):
            return 400, _error_json(400, 21604, ERROR_MESSAGES[21604])
        if not (one.get("From") or one.get("MessagingServiceSid")):
            return 400, _error_json(400, 21603, ERROR_MESSAGES[21603])
        if not one.get("Body"):
            return 400, _error_json(400, 21602, ERROR_MESSAGES[21602])
        with state.lock:
            sid = state.next_sids.pop(0) if state.next_sids else "SM" + secrets.token_hex(16)
        return 201, _message_json(state.account_sid, one, sid)

    def _reply(self, status: int, payload: dict) -> None:
        body = json.dumps(_public(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _schedule_callbacks(self, message: dict) -> None:
        thread = threading.Thread(target=_post_callbacks, args=(self.state, message), daemon=True)
        with self.state.lock:
            self.state.callback_threads.append(thread)
        thread.start()


def _public(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k != "status_callback"}


def _message_json(account_sid: str, form: dict[str, str], sid: str) -> dict:
    now = formatdate(usegmt=True)
    service = form.get("MessagingServiceSid")
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": form["Body"],
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From"),
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        # With only a Messaging Service, Twilio accepts first and picks the sender later.
        "status": "accepted" if service and not form.get("From") else "queued",
        "subresource_uris": {"media": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Media.json"},
        "to": form["To"],
        "uri": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json",
        "status_callback": form.get("StatusCallback"),  # kept for the callbacks, not sent back
    }


# Callbacks go straight to this machine, whatever proxy the environment names.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post_callbacks(state: _State, message: dict) -> None:
    url = message["status_callback"]
    target = url
    if state.callback_base_url:
        base = urlsplit(state.callback_base_url)
        parts = urlsplit(url)
        target = urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))
    for status in ("sent", "delivered"):
        time.sleep(state.callback_delay)
        form = {
            "AccountSid": state.account_sid,
            "ApiVersion": API_VERSION,
            "From": message["from"] or "",
            "MessageSid": message["sid"],
            "MessageStatus": status,
            "SmsSid": message["sid"],
            "SmsStatus": status,
            "To": message["to"],
        }
        if message["messaging_service_sid"]:
            form["MessagingServiceSid"] = message["messaging_service_sid"]
        result = CallbackResult(url=target, form=form)
        if urlsplit(target).hostname not in LOOPBACK_HOSTS:
            result.error = "refused: the fake only calls back to this machine"
        else:
            request = urllib.request.Request(
                target,
                data=urlencode(form).encode(),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": twilio_signature(url, form, state.auth_token),
                    "User-Agent": "TwilioProxy/1.1",
                },
                method="POST",
            )
            try:
                with _NO_PROXY.open(request, timeout=10) as response:
                    result.status = response.status
            except urllib.error.HTTPError as exc:
                result.status = exc.code
            except OSError as exc:
                result.error = f"{type(exc).__name__}: {exc}"
        with state.lock:
            state.callbacks.append(result)
