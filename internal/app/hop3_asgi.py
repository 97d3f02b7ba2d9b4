"""hop3's wrapper around an ASGI app run by Granian (HOP3_ASGI_APP).

Granian drops WebSockets without a close frame when it shuts down, and cuts
event streams (text/event-stream answers) still running when it is killed,
so hop3 drains a replaced generation through this wrapper before it stops
it:

- Each worker writes how many WebSockets and event streams it has open to
  HOP3_DRAIN_FILE.<pid> whenever that changes. An event stream is a
  text/event-stream answer to a request that accepts one (as a browser's
  EventSource does).
- hop3 writes HOP3_DRAIN_FILE, holding the time (Unix seconds) at which
  they must end. Within a tenth of a second each worker sees it and says so
  in its report ("N draining"); from then on it answers HTTP with
  "Connection: close", so the proxy's pooled connections to it go away
  after their next answer. At that time it closes each WebSocket with 1001
  Going Away, and ends each event stream as a complete answer (the app
  then receives http.disconnect).
- Once every worker reports none, hop3 sends SIGTERM: Granian finishes the
  requests in progress and exits.
"""
import asyncio
import importlib
import os
import time

_target = os.environ.get("HOP3_ASGI_APP", "")
_drain_file = os.environ.get("HOP3_DRAIN_FILE", "")
_module, _, _attr = _target.partition(":")
_app = importlib.import_module(_module)
for _name in (_attr or "app").split("."):
    _app = getattr(_app, _name)

_open = set()  # this worker's open WebSockets and event streams
_deadline = None  # when draining: the time they must end
_watcher = None


def _report():
    if not _drain_file:
        return
    path = "%s.%d" % (_drain_file, os.getpid())
    try:
        with open(path + ".tmp", "w") as f:
            f.write("%d%s\n" % (len(_open), "" if _deadline is None else " draining"))
        os.replace(path + ".tmp", path)
    except OSError:
        pass


async def _watch():
    global _deadline
    while _deadline is None:
        await asyncio.sleep(0.1)
        try:
            with open(_drain_file) as f:
                _deadline = float(f.read().strip() or 0)
        except (OSError, ValueError):
            continue
        _report()
    while _open:
        delay = _deadline - time.time()
        if delay <= 0:
            for conn in list(_open):
                await conn.close()
            return
        await asyncio.sleep(min(delay, 0.25))


def _ensure_watcher():
    global _watcher
    if _drain_file and (_watcher is None or _watcher.done()) and (_deadline is None or _open):
        _watcher = asyncio.ensure_future(_watch())


class _LongLived:
    """A WebSocket or an event stream: the app's receive and send, which
    close() ends on the app's behalf."""

    disconnect = {}

    def __init__(self, receive, send):
        self._receive = receive
        self._send = send
        self._going = asyncio.Event()

    async def close(self):
        if self._going.is_set():
            return
        self._going.set()
        try:
            await self._send(self.last_message)
        except Exception:
            pass
        # Over for the client, whether or not the app notices: what it
        # sends from now on is dropped.
        _open.discard(self)
        _report()

    async def receive(self):
        if self._going.is_set():
            return dict(self.disconnect)
        get = asyncio.ensure_future(self._receive())
        going = asyncio.ensure_future(self._going.wait())
        done, _ = await asyncio.wait({get, going}, return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            going.cancel()
            return get.result()
        get.cancel()
        return dict(self.disconnect)

    async def send(self, msg):
        if not self._going.is_set():
            await self._send(msg)


class _Socket(_LongLived):
    disconnect = {"type": "websocket.disconnect", "code": 1001}
    last_message = {"type": "websocket.close", "code": 1001, "reason": "server restarting"}


class _Stream(_LongLived):
    disconnect = {"type": "http.disconnect"}
    last_message = {"type": "http.response.body", "body": b"", "more_body": False}


def _asks_for_stream(scope):
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            return b"text/event-stream" in value
    return False


def _is_event_stream(headers):
    for name, value in headers:
        if bytes(name).lower() == b"content-type":
            return bytes(value).lower().startswith(b"text/event-stream")
    return False


async def _http(scope, receive, send):
    stream = None

    async def snd(msg):
        nonlocal stream
        if stream is not None:
            return await stream.send(msg)
        if msg["type"] == "http.response.start":
            headers = list(msg.get("headers", []))
            if _deadline is not None:
                headers = [h for h in headers if bytes(h[0]).lower() != b"connection"]
                msg = dict(msg, headers=headers + [(b"connection", b"close")])
            if _is_event_stream(headers):
                stream = _Stream(receive, send)
                _open.add(stream)
                _report()
                _ensure_watcher()
        await send(msg)

    async def rcv():
        if stream is not None:
            return await stream.receive()
        return await receive()

    try:
        return await _app(scope, rcv, snd)
    finally:
        if stream is not None:
            _open.discard(stream)
            _report()


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        _ensure_watcher()
        if _deadline is None and not _asks_for_stream(scope):
            return await _app(scope, receive, send)  # the common case, as is
        return await _http(scope, receive, send)
    if kind != "websocket":
        _ensure_watcher()  # lifespan: the watcher runs from the worker's start
        return await _app(scope, receive, send)
    _ensure_watcher()
    ws = _Socket(receive, send)
    _open.add(ws)
    _report()
    try:
        return await _app(scope, ws.receive, ws.send)
    finally:
        _open.discard(ws)
        _report()
