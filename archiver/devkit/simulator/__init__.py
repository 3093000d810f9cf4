"""A local stand-in for the getbill.io external API.

It behaves like the API as getbill documents it publicly, so that the archiver, its tests and
its demo run with no internet: OAuth client-credentials tokens and scope checks, the followup
and debt reads with pagination, per-client sliding-window rate limits, S3-style presigned media
URLs that really expire, real WAV/MP3/PDF bytes from a seed, and fault knobs (5xx, 429 bursts,
slow answers, truncated or HTML media, unstable pagination).

In process::

    sim = Simulator(SimulatorConfig(seed=1), base_url="http://sim.test")
    client = httpx.Client(transport=httpx.WSGITransport(app=sim.wsgi_app), base_url="http://sim.test")

Over a socket::

    with SimulatorServer(SimulatorConfig(seed=1)) as server:
        ...  # server.base_url == "http://127.0.0.1:<port>"
"""

from archiver.devkit.simulator.app import Simulator
from archiver.devkit.simulator.config import ClientSpec, SimClock, SimulatorConfig, default_clients
from archiver.devkit.simulator.server import SimulatorServer
from archiver.devkit.simulator.state import RequestRecord

__all__ = [
    "ClientSpec",
    "RequestRecord",
    "SimClock",
    "Simulator",
    "SimulatorConfig",
    "SimulatorServer",
    "default_clients",
]
