"""One DoIP or HSFZ link used by several threads at once, each for a DIFFERENT ECU (parallel
programming): a slow ECU's wait for its answer must not hold up the requests of the others, and
every answer reaches the thread that asked for it."""

from __future__ import annotations

import threading
import time

from firmware_py.transport.doip_link import DoipLink
from firmware_py.transport.hsfz_link import HsfzLink
from firmware_py.uds.vehicle import VehicleSession

VIN = "WBAJA71090B123456"


def _link(sim, enet: str) -> DoipLink | HsfzLink:
    if enet == "doip":
        return DoipLink(sim.doip_host, sim.doip_port, gateway_address=0x10)
    return HsfzLink(sim.hsfz_host, sim.hsfz_port)


def test_a_slow_ecu_does_not_hold_up_the_others(start_sim, enet) -> None:
    sim = start_sim()
    sim.inject(ecu="DME", delay=0.8)  # every answer of the DME comes 0.8 s late (within P2)
    vehicle = VehicleSession(_link(sim, enet))
    try:
        dme, egs = vehicle.ecu("DME"), vehicle.ecu("EGS")
        egs.read_dids(0xF190)  # sessions open before the clock starts
        slow: dict[str, object] = {}

        def ask_the_dme() -> None:
            slow["vin"] = dme.read_dids(0xF190)[0xF190]
            slow["at"] = time.monotonic()

        thread = threading.Thread(target=ask_the_dme)
        began = time.monotonic()
        thread.start()
        time.sleep(0.1)  # let the DME's request go out first: it waits while the EGS is asked
        answers = [egs.read_dids(0xF190)[0xF190] for _ in range(10)]
        fast = time.monotonic() - began
        thread.join(timeout=10)
        assert answers == [VIN] * 10
        assert slow["vin"] == VIN
        assert fast < 0.6, f"10 EGS requests took {fast:.2f} s behind a slow DME"
        assert float(slow["at"]) - began >= 0.7  # type: ignore[arg-type]
    finally:
        vehicle.close()


def test_threads_on_different_ecus_each_get_their_own_answers(sim_process, enet) -> None:
    vehicle = VehicleSession(_link(sim_process, enet))
    errors: list[BaseException] = []
    counts: dict[str, int] = {}
    try:
        sessions = {name: vehicle.ecu(name) for name in ("DME", "EGS", "DSC", "KOMBI")}

        def hammer(name: str) -> None:
            try:
                for _ in range(40):
                    assert sessions[name].read_dids(0xF190)[0xF190] == VIN
                    counts[name] = counts.get(name, 0) + 1
            except BaseException as err:  # noqa: BLE001 - reported by the main thread
                errors.append(err)

        threads = [threading.Thread(target=hammer, args=(n,)) for n in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        assert counts == {name: 40 for name in sessions}
    finally:
        vehicle.close()
