"""The HTTP side of ``archiver listen``: a Starlette app.

* ``POST /webhooks/getbill``: ``application/json`` only (else 415), at most
  ``max_body_bytes`` (a larger declared length is refused before reading, a longer body
  while it streams in: 413), within ``body_timeout_s`` (else 408); then
  :meth:`Intake.receive` on one of the intake's threads (401 / 200 / 202 / 503, see
  :mod:`.intake`).
  Refusals log one line without the body.
* ``GET /healthz``: 200 while the archive worker runs and the queue file answers, else 503;
  the JSON body says which, with the queue's counts.
* ``GET /metrics``: Prometheus text format (:mod:`.metrics`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from archiver.listen.intake import Intake
from archiver.listen.metrics import CONTENT_TYPE, ListenMetrics
from archiver.listen.settings import ListenSettings

__all__ = ["WEBHOOK_PATH", "create_app"]

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/getbill"
# The answer to a refused body goes out before the body is read: the connection must close.
_CLOSE = {"Connection": "close"}


class _TooLarge(Exception):
    pass


def create_app(
    intake: Intake,
    settings: ListenSettings,
    metrics: ListenMetrics,
    health: Callable[[], tuple[bool, dict[str, Any]]],
    threads: Executor,
) -> Starlette:
    """The listener's ASGI app over ``intake``; ``health`` says ``(ok, details)``; deliveries
    are received on ``threads`` (as many as the intake handles at once)."""
    cap = settings.max_body_bytes

    async def webhook(request: Request) -> Response:
        with intake.arriving():
            return await receive(request)

    async def receive(request: Request) -> Response:
        peer = request.client.host if request.client else "?"
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            return _refuse(metrics, 415, "unsupported_media_type", peer, "not application/json")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            return _refuse(metrics, 413, "too_large", peer, f"{declared} bytes declared")
        try:
            body = await asyncio.wait_for(_read(request, cap), settings.body_timeout_s)
        except _TooLarge:
            return _refuse(metrics, 413, "too_large", peer, f"more than {cap} bytes sent")
        except TimeoutError:
            return _refuse(metrics, 408, "timeout", peer, "body not sent in time")
        # A plain executor rather than anyio's thread pool: its hand-off costs a fraction.
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(
            threads, intake.receive, body, request.headers.items(), peer
        )
        return JSONResponse(answer.body, status_code=answer.status)

    async def healthz(request: Request) -> Response:
        ok, details = await run_in_threadpool(health)
        return JSONResponse(details, status_code=200 if ok else 503)

    async def prometheus(request: Request) -> Response:
        text = await run_in_threadpool(metrics.exposition)
        return Response(text, media_type=CONTENT_TYPE)

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
        ]
    )


async def _read(request: Request, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(metrics: ListenMetrics, status: int, outcome: str, peer: str, why: str) -> Response:
    metrics.delivery(outcome)
    log.warning("refused a webhook from %s: %s (HTTP %d, nothing stored)", peer, why, status)
    return JSONResponse({"error": outcome}, status_code=status, headers=_CLOSE)
