"""End-to-end fixtures: the simulator on a real socket + a fresh Object-Lock bucket on SeaweedFS.

``env``  an :class:`Env`: small seeded simulator, an ObjectStore, an ArchiverConfig and API
         settings that reach both; ``env.run(ids)`` archives through the same wiring as the CLI,
         ``env.cli_env()`` gives the environment variables a CLI run needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from archiver.archive.results import RunResult
from archiver.config import ArchiverConfig
from archiver.devkit.s3server import LocalS3Server
from archiver.devkit.simulator import SimClock, Simulator, SimulatorConfig, SimulatorServer
from archiver.getbill.settings import ApiSettings
from archiver.store.objects import ObjectStore
from archiver.wiring import open_archiver

__all__ = ["SMALL", "Env", "all_versions", "env", "manifest_of", "running_env"]

SMALL = dict(
    seed=3,
    debts=4,
    other_company_debts=1,
    followups_per_debt=8,
    big_debt_followups=10,
    audio_size_range=(20_000, 80_000),
    large_audio_share=0.0,
)


@dataclass
class Env:
    sim: Simulator
    sim_url: str
    s3: LocalS3Server
    store: ObjectStore
    config: ArchiverConfig
    api: ApiSettings
    clock: SimClock

    def run(self, debt_ids: list[str], **kw: Any) -> RunResult:
        with open_archiver(self.config, self.api, s3_client=self.s3.client(), **kw) as session:
            return session.archiver.run(debt_ids)

    def debts(self) -> list[str]:
        return self.sim.debt_ids(company="A")

    def cli_env(self) -> dict[str, str]:
        return {
            **self.s3.env(),
            "ARCHIVER_BUCKET": self.store.bucket,
            "ARCHIVER_CATALOG": str(self.config.catalog),
            "ARCHIVER_MEDIA_HOSTS": "127.0.0.1",
            "GETBILL_API_URL": self.sim_url,
            "GETBILL_CLIENT_ID": "demo-client",
            "GETBILL_CLIENT_SECRET": "demo-secret",
        }


E = TypeVar("E", bound=Env)


@contextmanager
def running_env(
    cls: type[E],
    s3: LocalS3Server,
    store: ObjectStore,
    tmp_path: Path,
    sim_config: SimulatorConfig,
) -> Iterator[E]:
    """A simulator of ``sim_config`` on a real socket, and settings that reach it and
    ``store`` (the ``env`` fixture's, and the sync tests' world)."""
    clock = SimClock()
    sim = Simulator(sim_config, clock=clock)
    with SimulatorServer(sim) as server:
        yield cls(
            sim=sim,
            sim_url=server.base_url,
            s3=s3,
            store=store,
            config=ArchiverConfig(
                bucket=store.bucket,
                catalog=tmp_path / "catalog.db",
                media_hosts=("127.0.0.1",),
                concurrency=4,
            ),
            api=ApiSettings(
                base_url=server.base_url,
                client_id="demo-client",
                client_secret="demo-secret",
                backoff_base=0.01,
                backoff_max=0.05,
            ),
            clock=clock,
        )


@pytest.fixture
def env(s3_server: LocalS3Server, locked_bucket: ObjectStore, tmp_path: Path) -> Iterator[Env]:
    config = SimulatorConfig(**SMALL)  # type: ignore[arg-type]
    with running_env(Env, s3_server, locked_bucket, tmp_path, config) as running:
        yield running


def all_versions(store: ObjectStore, prefix: str = "") -> list[Any]:
    return [v for v in store.list_versions(prefix) if not v.is_delete_marker]


def manifest_of(store: ObjectStore, debt_id: str, seq: int) -> tuple[bytes, dict[str, Any]]:
    data = store.read_bytes(f"debts/{debt_id}/manifests/{seq:08d}.json")
    return data, json.loads(data)
