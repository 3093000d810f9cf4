"""Listener fixtures: ``archiver listen`` on a real socket over the ``env`` world (simulator +
SeaweedFS), the simulator's webhooks pointed at it.

``live``  a :class:`Live`: the running listener, ``live.post(...)`` sends a delivery,
          ``live.wait_for(...)`` polls (bounded) until a condition holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fixtures_archive import Env

from archiver.listen.app import WEBHOOK_PATH
from archiver.listen.queue import DeliveryQueue
from archiver.listen.server import Listener, ListenServer
from archiver.listen.settings import ListenSettings
from archiver.listen.signature import SIGNATURE_HEADER, sign
from archiver.wiring import open_listener

__all__ = ["SECRET", "Live", "event_body", "live", "wait_for"]

SECRET = "whsec-listen-tests-0123456789"
T = TypeVar("T")


def wait_for(what: Callable[[], T | None], timeout: float = 60.0, every: float = 0.1) -> T:
    """Poll ``what`` until it returns something truthy; fail after ``timeout`` seconds (a
    bound against a hung test, not a measure of speed)."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:.0f} s")
        time.sleep(every)


def event_body(event_type: str, data: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"type": event_type, "data": data, "changes": {}, **extra}).encode()


@dataclass
class Live:
    env: Env
    listener: Listener
    server: ListenServer
    queue_path: Path

    @property
    def url(self) -> str:
        return self.server.url + WEBHOOK_PATH

    @property
    def queue(self) -> DeliveryQueue:
        return self.listener.queue

    def post(
        self,
        body: bytes,
        *,
        secret: str | None = SECRET,
        signature: str | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = {"Content-Type": content_type, **(headers or {})}
        if signature is None and secret is not None:
            signature = sign(body, secret)
        if signature is not None:
            sent[SIGNATURE_HEADER] = signature
        return httpx.post(self.url, content=body, headers=sent, timeout=15)

    def archived(self, sha: str) -> bool:
        row = self.queue.get(sha)
        return row is not None and row.state == "archived"


def listen_settings(**kw: Any) -> ListenSettings:
    return ListenSettings(
        secret=SECRET, retry_base_s=0.2, retry_max_s=1.0, header_timeout_s=2, body_timeout_s=2, **kw
    )


@pytest.fixture
def live(env: Env, tmp_path: Path) -> Iterator[Live]:
    queue_path = tmp_path / "listen-queue.db"
    with open_listener(
        env.config, env.api, listen_settings(), queue=queue_path, s3_client=env.s3.client()
    ) as listener:
        server = ListenServer(listener, "127.0.0.1", 0).start()
        env.sim.config.webhook_url = server.url + WEBHOOK_PATH
        env.sim.config.webhook_secret = SECRET
        try:
            yield Live(env, listener, server, queue_path)
        finally:
            env.sim.config.webhook_url = None
            env.sim.webhooks.close()
            server.stop()
