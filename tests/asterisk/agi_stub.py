"""A stand-in FastAGI server for dialplan tests that need a protocol number.

It answers the service's routes the way the contract says (``protocol`` sets
``SAC_PROTOCOL`` and ``SAC_RESULT``; ``subject``/``announce`` set ``SAC_RESULT``),
plays nothing, and records every request. Tests of sac-ivr itself start the real
``sac-ivr serve`` on the same port instead (``AsteriskInstance.sac_ivr_env()``).
"""

from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass, field


@dataclass
class AgiRequest:
    route: str
    args: list[str]
    headers: dict[str, str]
    replies: list[str] = field(default_factory=list)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        headers: dict[str, str] = {}
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                break
            key, _, value = line.partition(":")
            headers[key.strip()] = value.strip()
        route = headers.get("agi_network_script", "").strip("/")
        args = []
        i = 1
        while f"agi_arg_{i}" in headers:
            args.append(headers[f"agi_arg_{i}"])
            i += 1
        req = AgiRequest(route, args, headers)
        stub = self.server.stub
        with stub.lock:
            stub.requests.append(req)
        variables: list[tuple[str, str]] = []
        if route == "protocol":
            if stub.protocol:
                variables.append(("SAC_PROTOCOL", stub.protocol))
            variables.append(("SAC_RESULT", "OK" if stub.protocol else "ERROR"))
        else:
            variables.append(("SAC_RESULT", "OK"))
        for name, value in variables:
            self.wfile.write(f'SET VARIABLE {name} "{value}"\n'.encode())
            self.wfile.flush()
            req.replies.append(self.rfile.readline().decode().strip())


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    stub: AgiStub


class AgiStub:
    """``with AgiStub(port, protocol="...") as stub:`` serves until the block ends."""

    def __init__(self, port: int, *, protocol: str = "", host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.protocol = protocol
        self.requests: list[AgiRequest] = []
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> AgiStub:
        self._server = _Server((self.host, self.port), _Handler)
        self._server.stub = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def routes(self) -> list[tuple[str, list[str]]]:
        with self.lock:
            return [(r.route, r.args) for r in self.requests]

    def __enter__(self) -> AgiStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
