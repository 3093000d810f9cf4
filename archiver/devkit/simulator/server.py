"""Serve a :class:`Simulator` over a real socket on 127.0.0.1, in a background thread."""

from __future__ import annotations

import socketserver
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from archiver.devkit.background import BackgroundServer
from archiver.devkit.simulator.app import Simulator
from archiver.devkit.simulator.config import SimulatorConfig


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (a query string can hold a signature)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class SimulatorServer(BackgroundServer):
    """A threaded WSGI server for a simulator; use as a context manager.

    ``port=0`` picks a free port. The simulator's ``base_url`` (the prefix of signed media
    URLs) is set to this server's URL unless it was given explicitly.

    Example::

        with SimulatorServer(SimulatorConfig(seed=1)) as server:
            httpx.post(server.base_url + "/token", data={...})
    """

    def __init__(
        self,
        sim_or_config: Simulator | SimulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the simulator only binds to the loopback interface")
        if isinstance(sim_or_config, Simulator):
            self.simulator = sim_or_config
        else:
            self.simulator = Simulator(sim_or_config)
        self._server = make_server(
            host,
            port,
            self.simulator.wsgi_app,
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        self.host = host
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://{host}:{self.port}"
        if self.simulator.base_url is None:
            self.simulator.base_url = self.base_url
        self.thread_name = f"getbill-simulator-{self.port}"

    def archiver_env(self) -> dict[str, str]:
        """The variables that point ``archiver`` at this simulator: API URL, the first client's
        (fictitious) credentials, and media hosts allowing this loopback host."""
        client = self.simulator.config.clients[0]
        return {
            "GETBILL_API_URL": self.base_url,
            "GETBILL_CLIENT_ID": client.client_id,
            "GETBILL_CLIENT_SECRET": client.client_secret,
            "ARCHIVER_MEDIA_HOSTS": self.host,
        }

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI)."""
        self._server.serve_forever(poll_interval=0.2)
