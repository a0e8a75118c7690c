"""``SimulatedVehicle``: the vehicle file brought to life - ECU models, the DoIP entity, the CAN
face and the control API - in-process (tests, the demo) or as ``vci sim``."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import can

from firmware_py.sim.can_server import CanFace
from firmware_py.sim.doip_server import DoipEntity
from firmware_py.sim.ecu import Battery, EcuModel
from firmware_py.sim.faults import BusFaults, EcuFaults, FaultSpecError
from firmware_py.sim.hsfz_server import HsfzEntity
from firmware_py.sim.vehicle import VehicleSpec
from firmware_py.transport.hsfz import HsfzIdentity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimOptions:
    host: str = "127.0.0.1"
    doip_port: int | None = 13400
    """None: no DoIP entity; 0: a free port."""
    can_interface: str | None = "vci_loopback"
    """None: no CAN face."""
    can_channel: str = "239.74.163.2:43113"
    hsfz_port: int | None = None
    """BMW HSFZ diagnostic TCP port (6801 in a car); None: no HSFZ face; 0: a free one."""
    hsfz_control_port: int = 6811
    """HSFZ identification UDP port (6811 in a car); 0: a free one."""
    control_port: int | None = None
    """None: no control API; 0: a free port."""
    announce_to: str | None = "127.255.255.255"
    """where vehicle announcements go at start-up, ``HOST`` or ``HOST:PORT`` (default: the loopback
    broadcast address, DoIP port); None: none."""
    security_delay: float = 10.0
    general_inactivity: float = 300.0
    initial_inactivity: float = 2.0


class SimulatedVehicle:
    def __init__(self, spec: VehicleSpec, options: SimOptions = SimOptions()) -> None:
        self.spec = spec
        self.options = options
        self.battery = Battery(spec.battery_voltage)
        self.bus_faults = BusFaults()
        self.ecus = {
            e.address: EcuModel(e, spec, self.battery, security_delay=options.security_delay)
            for e in spec.ecus
        }
        self.doip: DoipEntity | None = None
        self.doip_port: int | None = None
        self.hsfz: HsfzEntity | None = None
        self.hsfz_ports: tuple[int, int] | None = None
        self.can_face: CanFace | None = None
        self.can_bus: can.BusABC | None = None
        self.control_port: int | None = None
        self._control_runner: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- faults and state --------------------------------------------------------------
    def ecu_by_name(self, name: str | int) -> EcuModel:
        if isinstance(name, int) or str(name).lower().startswith("0x"):
            address = int(name, 0) if isinstance(name, str) else name
            if address in self.ecus:
                return self.ecus[address]
        for model in self.ecus.values():
            if model.spec.name.upper() == str(name).upper():
                return model
        raise FaultSpecError(f"no ECU {name!r} in this vehicle")

    def inject(self, **faults: Any) -> None:
        """Set faults (see :mod:`firmware_py.sim.faults`); ``clear=True`` removes all first."""
        if faults.pop("clear", False):
            self.bus_faults.__init__()  # type: ignore[misc]
            for model in self.ecus.values():
                with model.lock:
                    model.faults.__init__()  # type: ignore[misc]
        if "battery" in faults:
            self.battery.volts = float(faults.pop("battery"))
        ecu = faults.pop("ecu", None)
        if ecu is not None:
            model = self.ecu_by_name(ecu)
            f: EcuFaults = model.faults
            with model.lock:
                if "delay" in faults:
                    f.delay = float(faults.pop("delay"))
                if "silent" in faults:
                    f.no_answer = bool(faults.pop("silent"))
                if "nrc" in faults:
                    f.nrc.update({int(str(k), 0): int(v) for k, v in faults.pop("nrc").items()})
                if "pending" in faults:
                    f.extra_pending = int(faults.pop("pending"))
                if "truncate" in faults:
                    f.truncate_response = bool(faults.pop("truncate"))
                if "pending_forever" in faults:
                    f.pending_forever.update(int(str(k), 0) for k in faults.pop("pending_forever"))
                if "dtc_flood" in faults:
                    f.dtc_flood = int(faults.pop("dtc_flood"))
                if "reset_after_blocks" in faults:
                    f.reset_after_blocks = int(faults.pop("reset_after_blocks"))
        b = self.bus_faults
        if "doip_reset_after" in faults:
            b.doip_reset_after = int(faults.pop("doip_reset_after"))
            if self.doip is not None:
                self.doip.diagnostic_messages = 0
        if "doip_reset_on_transfer" in faults:
            b.doip_reset_on_transfer = bool(faults.pop("doip_reset_on_transfer"))
        if "drop_can_frame" in faults:
            b.drop_can_frame.update(
                {int(str(k), 0): int(v) for k, v in faults.pop("drop_can_frame").items()}
            )
        if "drop_can_rate" in faults:
            b.drop_can_rate = float(faults.pop("drop_can_rate"))
        if "drop_can_seed" in faults:
            b.drop_can_seed = int(faults.pop("drop_can_seed"))
            if self.can_face is not None:
                self.can_face._random.seed(b.drop_can_seed)
        if faults:
            raise FaultSpecError(f"unknown fault settings: {', '.join(sorted(faults))}")

    def obd(self, action: str, code: str | None = None) -> dict[str, Any]:
        """The engine's OBD state changed as a drive would change it (control API ``/obd``):
        ``drive_cycle`` (every monitor runs), ``fault`` (``code`` turns the MIL on; no code:
        the fault is repaired), ``clear`` (as mode 04 does). Returns the new OBD state."""
        engine = next((m for m in self.ecus.values() if m.obd is not None), None)
        if engine is None or engine.obd is None:
            raise FaultSpecError("this vehicle has no ECU with an OBD face ([ecu.obd])")
        actions = {
            "drive_cycle": engine.obd.drive_cycle,
            "clear": engine.obd.clear,
            "fault": lambda: engine.obd.set_fault(code),  # type: ignore[union-attr]
        }
        if action not in actions:
            raise FaultSpecError(f"obd action must be one of {', '.join(actions)}, not {action!r}")
        with engine.lock:
            try:
                actions[action]()
            except ValueError as err:
                raise FaultSpecError(str(err)) from err
            return engine.obd.state()

    def reset(self) -> None:
        """Back to the vehicle file's state, faults cleared."""
        self.inject(clear=True)
        self.battery.volts = self.spec.battery_voltage
        for model in self.ecus.values():
            with model.lock:
                model.reset_state()

    def state(self) -> dict[str, Any]:
        return {
            "vin": self.spec.vin,
            "battery_voltage": self.battery.volts,
            "doip_port": self.doip_port,
            "doip_connections": len(self.doip.open_sockets) if self.doip else 0,
            "faults": {
                "bus": self.bus_faults.to_dict(),
                "ecus": {m.spec.name: m.faults.to_dict() for m in self.ecus.values()},
            },
            "ecus": {m.spec.name: m.state() for m in self.ecus.values()},
        }

    # -- lifecycle (inside an event loop) ----------------------------------------------------
    async def start(self) -> None:
        o = self.options
        if o.doip_port is not None and "doip" in self.spec.enet:
            self.doip = DoipEntity(
                vin=self.spec.vin,
                logical_address=self.spec.gateway_address,
                eid=self.spec.eid,
                gid=self.spec.gid,
                ecus=self.ecus,
                faults=self.bus_faults,
                clock=time.monotonic,
                initial_inactivity=o.initial_inactivity,
                general_inactivity=o.general_inactivity,
            )
            self.doip_port = await self.doip.start(o.host, o.doip_port)
            if o.announce_to:
                host, _, port = o.announce_to.partition(":")
                self.doip.announce((host, int(port) if port else self.doip_port))
        if o.hsfz_port is not None and "hsfz" in self.spec.enet:
            self.hsfz = HsfzEntity(
                identity=HsfzIdentity(
                    self.spec.gateway_address, self.spec.eid.hex(), self.spec.vin
                ),
                ecus=self.ecus,
                faults=self.bus_faults,
                inactivity=o.general_inactivity,
            )
            self.hsfz_ports = await self.hsfz.start(o.host, o.hsfz_port, o.hsfz_control_port)
        if o.can_interface is not None:
            self.can_bus = can.Bus(interface=o.can_interface, channel=o.can_channel)
            self.can_face = CanFace(self.can_bus, self.ecus, self.bus_faults)
            self.can_face.start()
        if o.control_port is not None:
            from firmware_py.sim.control import start_control_api

            self._control_runner, self.control_port = await start_control_api(
                self, o.host, o.control_port
            )

    async def stop(self) -> None:
        if self._control_runner is not None:
            await self._control_runner.cleanup()
        if self.doip is not None:
            await self.doip.stop()
        if self.hsfz is not None:
            await self.hsfz.stop()
        if self.can_face is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.can_face.stop)
        if self.can_bus is not None:
            self.can_bus.shutdown()

    # -- in a thread of its own (tests, the demo) ---------------------------------------------
    def start_in_thread(self, timeout: float = 10.0) -> SimulatedVehicle:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as err:  # noqa: BLE001 - reported to the starting thread
                failure.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="vci-sim")
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the simulated vehicle did not start")
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> SimulatedVehicle:
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop_thread()
