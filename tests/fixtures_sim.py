"""Fixtures of the getbill simulator (archiver.devkit.simulator).

* ``sim_clock``   a :class:`SimClock` (real time + an offset a test can ``advance()``).
* ``simulator``   an in-process :class:`Simulator`, seed 1, base URL ``http://sim.test``;
                  talk to it with ``httpx.Client(transport=sim_transport(simulator), ...)``.
* ``sim_server``  a :class:`SimulatorServer` on 127.0.0.1 (random port), seed 1, started;
                  ``sim_server.base_url``, ``sim_server.simulator``.
Both simulators use ``sim_clock``, so ``sim_clock.advance(3601)`` expires their URLs/tokens.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from archiver.devkit.simulator import SimClock, Simulator, SimulatorConfig, SimulatorServer

__all__ = ["sim_clock", "sim_server", "simulator"]


def sim_transport(sim: Simulator) -> httpx.WSGITransport:
    """An httpx transport that calls the simulator in-process (no socket)."""
    return httpx.WSGITransport(app=sim.wsgi_app)


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock()


@pytest.fixture
def simulator(sim_clock: SimClock) -> Simulator:
    return Simulator(SimulatorConfig(seed=1), base_url="http://sim.test", clock=sim_clock)


@pytest.fixture
def sim_server(sim_clock: SimClock) -> Iterator[SimulatorServer]:
    with SimulatorServer(Simulator(SimulatorConfig(seed=1), clock=sim_clock)) as server:
        yield server
