"""End-to-end fixtures: the simulator on a real socket + a fresh Object-Lock bucket on SeaweedFS.

``env``  an :class:`Env`: small seeded simulator, an ObjectStore, an ArchiverConfig and API
         settings that reach both; ``env.run(ids)`` archives through the same wiring as the CLI,
         ``env.cli_env()`` gives the environment variables a CLI run needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from archiver.archive.results import RunResult
from archiver.config import ArchiverConfig
from archiver.devkit.s3server import LocalS3Server
from archiver.devkit.simulator import SimClock, Simulator, SimulatorConfig, SimulatorServer
from archiver.getbill.settings import ApiSettings
from archiver.store.objects import ObjectStore
from archiver.wiring import open_archiver

__all__ = ["SMALL", "Env", "all_versions", "env", "manifest_of"]

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


@pytest.fixture
def env(s3_server: LocalS3Server, locked_bucket: ObjectStore, tmp_path: Path) -> Iterator[Env]:
    clock = SimClock()
    sim = Simulator(SimulatorConfig(**SMALL), clock=clock)  # type: ignore[arg-type]
    with SimulatorServer(sim) as server:
        yield Env(
            sim=sim,
            sim_url=server.base_url,
            s3=s3_server,
            store=locked_bucket,
            config=ArchiverConfig(
                bucket=locked_bucket.bucket,
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


def all_versions(store: ObjectStore, prefix: str = "") -> list[Any]:
    return [v for v in store.list_versions(prefix) if not v.is_delete_marker]


def manifest_of(store: ObjectStore, debt_id: str, seq: int) -> tuple[bytes, dict[str, Any]]:
    data = store.read_bytes(f"debts/{debt_id}/manifests/{seq:08d}.json")
    return data, json.loads(data)
