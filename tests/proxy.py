"""A reverse proxy in front of a moto server, for what moto alone cannot do.

- `delay`: every request waits this long first (a real region's round trip), for the benchmark.
- `kill_after_write`: after the k-th write that AWS (moto) *accepted*, SIGKILL the client process
  before it sees the answer: the most awkward moment for a crash. For the crash harness.
- `hold_after_write`: once k writes were accepted, every later request waits (unforwarded) until
  `release()`: a run paused at a known point (say, holding its lease) while another one runs.

It listens on 127.0.0.1 only and forwards to the moto endpoint it is given.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

READ_PREFIXES = ("Describe", "Get", "List")


def action_of(method: str, path: str, headers, body: bytes) -> str:
    target = headers.get("X-Amz-Target")
    if target:
        return target
    if body:
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    return f"{method} {path}"


def is_write(action: str) -> bool:
    if action.startswith(("GET ", "HEAD ")):
        return False
    name = action.split(".")[-1].split(" ")[0]
    return not name.startswith(READ_PREFIXES)


@dataclass(frozen=True)
class Timing:
    action: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


class Proxy:
    def __init__(self, upstream: str, delay: float = 0.0):
        self.upstream = urlparse(upstream)
        self.delay = delay
        self.kill_after_write: int | None = None
        self.hold_after_write: int | None = None
        self.holding = threading.Event()  # set once a request waits at the hold
        self._released = threading.Event()
        self.victim_pid: int | None = None
        self.actions: list[str] = []
        self._timings: list[Timing] = []
        self.writes = 0
        self.killed = False
        self.killed_after: str | None = None  # the write whose answer the killed run never saw
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                # Headers and body go out in two writes: without this, Nagle's algorithm holds the body
                # until the client's delayed ACK (40 ms on Linux), a round trip the delay does not mean.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:  # the client died while sending: AWS would never see this request
                    self.close_connection = True
                    return
                action = action_of(self.command, self.path, self.headers, body)
                started = time.monotonic()
                if proxy.hold_after_write is not None and proxy.writes >= proxy.hold_after_write and not proxy._released.is_set():
                    proxy.holding.set()
                    proxy._released.wait(timeout=300)
                if proxy.delay:
                    time.sleep(proxy.delay)
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                conn.close()
                kill = False
                with proxy._lock:
                    proxy.actions.append(action)
                    proxy._timings.append(Timing(action, started, time.monotonic()))
                    if is_write(action) and response.status < 300:
                        proxy.writes += 1
                        kill = proxy.kill_after_write is not None and proxy.writes == proxy.kill_after_write
                if kill and proxy.victim_pid:
                    os.kill(proxy.victim_pid, signal.SIGKILL)
                    proxy.killed = True
                    proxy.killed_after = f"{action} (write {proxy.writes}, request {len(proxy.actions)})"
                    self.close_connection = True
                    return
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "Proxy":
        self._thread.start()
        return self

    def release(self) -> None:
        self._released.set()

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def timings(self) -> list[Timing]:
        with self._lock:
            return list(self._timings)

    def reset_counts(self) -> None:
        with self._lock:
            self.actions.clear()
            self._timings.clear()
            self.writes = 0
            self.killed = False
            self.killed_after = None
