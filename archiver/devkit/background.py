"""A local HTTP server served on a daemon thread: the one start/stop/``with`` of the devkit's
servers (the getbill simulator, the test TSA)."""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType
from typing import Self

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """Serves ``self._server`` on a daemon thread between :meth:`start` and :meth:`stop`."""

    _server: socketserver.BaseServer
    _thread: threading.Thread | None = None
    thread_name = "devkit-server"

    def start(self) -> Self:
        """Serve in a daemon thread (returns at once; a second call does nothing)."""
        if self._thread is None:
            # A short poll: stopping the server takes that long.
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=self.thread_name,
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
