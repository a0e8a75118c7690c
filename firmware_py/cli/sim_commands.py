"""``vci sim``: run the simulated vehicle in this process until SIGTERM / Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING

from firmware_py.errors import ConfigError

if TYPE_CHECKING:
    from firmware_py.sim.runtime import SimOptions, SimulatedVehicle


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "sim",
        help="run the simulated vehicle (DoIP and BMW HSFZ on ENET, ECUs on a CAN bus)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run a simulated vehicle, declared by a vehicle file, that speaks DoIP (ISO 13400-2)\n"
            "on TCP/UDP, BMW HSFZ on TCP/UDP (6801/6811) and ISO-TP/UDS on a CAN bus, each face\n"
            "as the vehicle file allows. Prints one line when it is listening ('-': face off):\n"
            "  vci-sim ready doip=HOST:PORT hsfz=HOST:DIAG/CONTROL can=INTERFACE:CHANNEL "
            "control=URL vin=VIN"
        ),
        epilog=(
            "fault specs (--fault, repeatable; ECU is a name (DME) or an address (0x12)):\n"
            "  delay:ECU=SECONDS          the ECU answers late\n"
            "  silent:ECU                 the ECU does not answer\n"
            "  nrc:ECU:SID=NRC            the ECU answers that service with that NRC\n"
            "  pending:ECU=N              N more 'response pending' for slow routines\n"
            "  pending-forever:ECU:SID    only 'response pending' to that service\n"
            "  dtc-flood:ECU=N            N more made-up DTCs (a huge 0x19 answer)\n"
            "  truncate:ECU               positive responses lose their last byte\n"
            "  reset-after-blocks:ECU=N   the ECU resets after N TransferData blocks\n"
            "  doip-reset-after=N         the gateway (DoIP and HSFZ) resets the TCP connection\n"
            "                             after N diagnostic messages\n"
            "  doip-reset-on-transfer     ... or on the next TransferData\n"
            "  drop-can-frame:ID=N        the CAN face drops the Nth frame on that identifier\n"
            "  drop-can-rate=P            ... or each frame with probability P\n"
            "  drop-can-seed=N            the seed of drop-can-rate\n"
            "  battery=VOLTS              supply voltage\n"
            "See docs/simulator.md."
        ),
    )
    p.add_argument(
        "--vehicle",
        default="g30",
        help="built-in vehicle (g30: DoIP and HSFZ; f30: HSFZ only) or a vehicle .toml file (default: g30)",
    )
    p.add_argument(
        "--vin", help="the vehicle's VIN instead of the vehicle file's (17 letters/digits)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument(
        "--doip-port",
        type=int,
        default=13400,
        help="DoIP TCP and UDP port, 0 for a free one (default: 13400)",
    )
    p.add_argument("--no-doip", action="store_true", help="no DoIP entity")
    p.add_argument(
        "--hsfz-port",
        type=int,
        default=6801,
        help="BMW HSFZ diagnostic TCP port, 0 for a free one (default: 6801)",
    )
    p.add_argument(
        "--hsfz-control-port",
        type=int,
        default=6811,
        help="HSFZ vehicle identification UDP port, 0 for a free one (default: 6811)",
    )
    p.add_argument("--no-hsfz", action="store_true", help="no HSFZ face")
    p.add_argument(
        "--can-interface",
        default="vci_loopback",
        help="python-can interface (default: vci_loopback)",
    )
    p.add_argument(
        "--can-channel",
        default="239.74.163.2:43113",
        help="python-can channel (default: 239.74.163.2:43113)",
    )
    p.add_argument("--no-can", action="store_true", help="no CAN face")
    p.add_argument(
        "--control-port",
        type=int,
        default=0,
        help="control API port on the host, 0 for a free one (default)",
    )
    p.add_argument("--no-control", action="store_true", help="no control API")
    p.add_argument(
        "--announce-to",
        default="127.255.255.255",
        help="where DoIP vehicle announcements go at start, HOST or HOST:PORT ('' for none; "
        "default: 127.255.255.255)",
    )
    p.add_argument(
        "--fault", action="append", default=[], metavar="SPEC", help="inject a fault (see below)"
    )
    p.add_argument(
        "--battery", type=float, help="battery voltage in volts (default: the vehicle file's)"
    )
    p.add_argument(
        "--security-delay",
        type=float,
        default=10.0,
        help="lock-out after 3 wrong keys, seconds (default: 10)",
    )
    p.add_argument(
        "--tcp-inactivity",
        type=float,
        default=300.0,
        help="T_TCP_General_Inactivity (DoIP; HSFZ's idle time too), seconds (default: 300)",
    )
    p.set_defaults(func=run_sim)


def run_sim(args: argparse.Namespace) -> int:
    import asyncio

    from firmware_py.sim.faults import FaultSpecError, parse_fault
    from firmware_py.sim.runtime import SimOptions, SimulatedVehicle
    from firmware_py.sim.vehicle import VehicleFileError, load_vehicle

    try:
        spec = load_vehicle(args.vehicle)
        if args.vin is not None:
            import dataclasses

            spec = dataclasses.replace(spec, vin=args.vin)
        faults = [parse_fault(f) for f in args.fault]
    except (VehicleFileError, FaultSpecError) as err:
        raise ConfigError(str(err)) from err
    options = SimOptions(
        host=args.host,
        doip_port=None if args.no_doip else args.doip_port,
        hsfz_port=None if args.no_hsfz else args.hsfz_port,
        hsfz_control_port=args.hsfz_control_port,
        can_interface=None if args.no_can else args.can_interface,
        can_channel=args.can_channel,
        control_port=None if args.no_control else args.control_port,
        announce_to=args.announce_to or None,
        security_delay=args.security_delay,
        general_inactivity=args.tcp_inactivity,
    )
    vehicle = SimulatedVehicle(spec, options)
    try:
        for fault in faults:
            vehicle.inject(**fault)
        if args.battery is not None:
            vehicle.inject(battery=args.battery)
    except FaultSpecError as err:
        raise ConfigError(str(err)) from err
    asyncio.run(_serve(vehicle, options))
    return 0


async def _serve(vehicle: SimulatedVehicle, options: SimOptions) -> None:
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await vehicle.start()
    except OSError as err:
        raise ConfigError(
            f"cannot listen: {err}", hint="Is another vci sim running? Choose another port"
        ) from err
    doip = f"{options.host}:{vehicle.doip_port}" if vehicle.doip_port else "-"
    hsfz = (
        f"{options.host}:{vehicle.hsfz_ports[0]}/{vehicle.hsfz_ports[1]}"
        if vehicle.hsfz_ports
        else "-"
    )
    can_ = f"{options.can_interface}:{options.can_channel}" if options.can_interface else "-"
    control = f"http://{options.host}:{vehicle.control_port}" if vehicle.control_port else "-"
    print(
        f"vci-sim ready doip={doip} hsfz={hsfz} can={can_} control={control} vin={vehicle.spec.vin}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await vehicle.stop()
        print("vci-sim stopped", file=sys.stderr, flush=True)
