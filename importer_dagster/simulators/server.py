"""The HTTP plumbing both simulators share.

The simulators are real HTTP servers so that the importer's tests, demo and benchmarks exercise
the same code path (requests, urllib3 retries, connection pooling) as production. They bind to
127.0.0.1 only: nothing they serve is meant to leave the machine.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"
SHUTDOWN_POLL_S = 0.05
"""How often serve_forever checks for stop(): socketserver's default 0.5 s made every stop() that slow."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False
    """Close the socket without answering: what a client sees when a response is lost."""

    @classmethod
    def json(cls, status: int, payload: Any, content_type: str = "application/json") -> Response:
        return cls(status, json.dumps(payload).encode(), content_type)


Handler = Callable[[Request], Response]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app: Handler

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the simulators' callers assert on state, not on access logs."""

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=parts.path,
            query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers=self.headers,
            body=body,
        )
        response = self.app(request)
        if response.drop_connection:
            self.close_connection = True
            return
        self.send_response(response.status)
        if response.body or response.status not in (204, 304):
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class SimulatorServer:
    """Serves one handler function on 127.0.0.1 from a background thread."""

    def __init__(self, app: Handler, port: int = 0):
        handler_cls = type("BoundHandler", (_RequestHandler,), {"app": staticmethod(app)})
        self._httpd = _Server((LOOPBACK, port), handler_cls)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> SimulatorServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            args=(SHUTDOWN_POLL_S,),
            name=f"simulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever(SHUTDOWN_POLL_S)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)
