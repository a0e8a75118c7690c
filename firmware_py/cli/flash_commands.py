"""Programming and coding commands: ``vci package build|verify``, ``vci flash``, ``vci coding``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware_py.cli.transport_args import add_transport_args, config_from_args
from firmware_py.config import load_config
from firmware_py.errors import ConfigError, PackageError

if TYPE_CHECKING:
    from firmware_py.gateway.events import Event


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pkg = sub.add_parser("package", help="build or verify signed flash packages").add_subparsers(
        dest="package_command", required=True, metavar="ACTION"
    )
    b = pkg.add_parser("build", help="build a signed flash package (for publishers)")
    b.add_argument("--ecu", required=True, help="target ECU name or address")
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument("--hex", type=Path, help="Intel HEX image")
    src.add_argument("--srec", type=Path, help="Motorola S-record image")
    src.add_argument("--bin", help="raw binary image as FILE@ADDRESS")
    b.add_argument(
        "--version", required=True, help="software version the image installs (e.g. 41.08.00)"
    )
    b.add_argument("--expect-hw", help="hardware number the ECU must have")
    b.add_argument(
        "--expect-sw",
        action="append",
        default=[],
        help="software version the ECU may have before (repeatable)",
    )
    b.add_argument(
        "--max-block", type=lambda s: int(s, 0), help="upper bound for TransferData blocks"
    )
    b.add_argument(
        "--key",
        required=True,
        type=Path,
        help="publisher's Ed25519 private key (PEM); its file name is the key id",
    )
    b.add_argument("-o", "--output", required=True, type=Path)
    b.set_defaults(func=cmd_build)
    v = pkg.add_parser("verify", help="check a package's signature and contents")
    v.add_argument("file", type=Path)
    v.add_argument(
        "--trust",
        type=Path,
        help="directory of trusted publisher keys (default: [security] publisher_keys_dir)",
    )
    v.set_defaults(func=cmd_verify)

    f = sub.add_parser(
        "flash",
        help="program ECUs with signed packages (journaled, resumable)",
        description="Program one or more ECUs, in the order given (with --parallel: the ECUs behind the ENET gateway at the same time), as one job. Every step is journaled; after an interruption 'vci flash --resume' finishes every ECU from its last safe point.",
    )
    f.add_argument("packages", nargs="*", type=Path, metavar="PACKAGE")
    f.add_argument("--ecu", help="the ECU to program (checked against the package)")
    f.add_argument(
        "--parallel",
        action="store_true",
        help="program the ECUs behind the ENET gateway at the same time (docs/programming.md)",
    )
    f.add_argument(
        "--resume", action="store_true", help="finish the interrupted programming job (every ECU)"
    )
    f.add_argument("--status", action="store_true", help="show the programming journal")
    f.add_argument("--trust", type=Path, help="directory of trusted publisher keys")
    f.add_argument(
        "--min-voltage",
        type=float,
        default=13.0,
        help="refuse to start below this battery voltage (default 13.0 V)",
    )
    f.add_argument("--state-dir", type=Path, help="state directory (default: [storage] state_dir)")
    add_transport_args(f)
    f.set_defaults(func=cmd_flash)

    from firmware_py.cli.coding_commands import register as register_coding

    register_coding(sub)


def _segments(args: argparse.Namespace) -> tuple[list[tuple[int, bytes]], str]:
    import bincopy

    if args.bin:
        path, _, address = args.bin.rpartition("@")
        if not path:
            raise ConfigError("--bin needs FILE@ADDRESS, e.g. image.bin@0x00100000")
        return [(int(address, 0), Path(path).read_bytes())], "bin"
    binfile = bincopy.BinFile()
    try:
        if args.hex:
            binfile.add_ihex_file(str(args.hex))
            fmt = "ihex"
        else:
            binfile.add_srec_file(str(args.srec))
            fmt = "srec"
    except (bincopy.Error, OSError, UnicodeDecodeError) as err:
        raise PackageError(f"cannot read the image: {err}") from err
    return [(s.minimum_address, bytes(s.data)) for s in binfile.segments], fmt


def cmd_build(args: argparse.Namespace) -> int:
    from firmware_py.keys import load_private_key
    from firmware_py.uds.catalog import load_catalog
    from firmware_py.uds.flash.package import SequenceParams, build_package

    ecu = load_catalog().find(args.ecu)
    kid, key = load_private_key(args.key)
    segments, fmt = _segments(args)
    raw = build_package(
        ecu_name=ecu.name,
        ecu_address=ecu.address,
        version=args.version,
        segments=segments,
        key=key,
        kid=kid,
        image_format=fmt,
        hw_number=args.expect_hw,
        sw_versions=tuple(args.expect_sw),
        sequence=SequenceParams(max_block_length=args.max_block),
    )
    args.output.write_bytes(raw)
    print(
        f"{args.output}: {ecu.name} {args.version}, {sum(len(d) for _, d in segments)} bytes in {len(segments)} segment(s), signed by {kid}"
    )
    return 0


def _trusted(args: argparse.Namespace) -> dict[str, Any]:
    from firmware_py.keys import load_public_keys

    if args.trust:
        return dict(load_public_keys(args.trust))
    cfg = load_config(Path(args.config) if args.config else None)
    return dict(load_public_keys(cfg.security.publisher_keys_dir))


def cmd_verify(args: argparse.Namespace) -> int:
    from firmware_py.uds.flash.package import load_package_file

    package = load_package_file(args.file, _trusted(args))
    info = {
        "ecu": package.ecu_name,
        "address": package.ecu_address,
        "version": package.version,
        "publisher": package.publisher,
        "expects_hw": package.hw_number,
        "expects_sw": list(package.sw_versions),
        "segments": [
            {"address": s.address, "length": s.length, "sha256": s.sha256} for s in package.segments
        ],
        "sha256": package.sha256,
    }
    if args.json:
        print(json.dumps(info))
    else:
        print(
            f"{args.file}: valid, signed by {package.publisher}; {package.ecu_name} (0x{package.ecu_address:02X}) -> {package.version}"
        )
        for s in package.segments:
            print(f"  segment 0x{s.address:08X} {s.length} bytes sha256 {s.sha256}")
    return 0


class ProgressPrinter:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.tty = sys.stdout.isatty()
        self.last_decile: dict[str | None, int] = {}

    def __call__(self, event: Event) -> None:
        if not event.kind.startswith("job."):
            return
        data = event.to_dict()
        if self.as_json:
            job = data.pop("job", None) or {}
            if event.final:
                data.update(result=job.get("result"), error=job.get("error"))
                if job.get("finished") and job.get("created"):
                    data["seconds"] = round(job["finished"] - job["created"], 3)
            print(json.dumps(data), flush=True)
            return
        ecu = data.get("ecu")
        if event.kind == "job.step":
            if self.tty:
                print()
            step = str(data["step"])
            print(step if not ecu or step.startswith(f"{ecu}:") else f"{ecu}: {step}", flush=True)
        elif event.kind == "job.progress":
            pct = float(data.get("percent", 0))
            rate = data.get("rate") or 0
            left = data.get("time_left")
            text = f"{pct:5.1f} %  {rate / 1e6:7.2f} MB/s" + (
                f"  {left:.0f} s left" if left is not None else ""
            )
            if self.tty:
                bar = "#" * int(pct / 2.5)
                print(f"\r[{bar:<40}] {text}", end="", flush=True)
            elif int(pct // 10) > self.last_decile.get(ecu, -1):
                self.last_decile[ecu] = int(pct // 10)
                print(f"  {ecu + ' ' if ecu else ''}{text}", flush=True)


def cmd_flash(args: argparse.Namespace) -> int:
    from firmware_py.gateway.flash_journal import FlashJournal
    from firmware_py.gateway.jobs import JobRequest, JobState
    from firmware_py.gateway.local import run_cli_job
    from firmware_py.gateway.setup import entitlement_check
    from firmware_py.gateway.store import Store
    from firmware_py.uds.flash.package import load_package_file

    overrides = {"storage": {"state_dir": args.state_dir}} if args.state_dir else {}
    cfg, transport = config_from_args(args)
    if overrides:
        cfg = load_config(
            Path(args.config) if args.config else None,
            overrides={**overrides, "transport": cfg.transport.__dict__},
        )
    store = Store(cfg.storage.state_dir)
    journal = FlashJournal(store)
    if args.status:
        records = journal.recent()
        if args.json:
            print(json.dumps([r.to_dict() for r in records]))
        for r in [] if args.json else records:
            print(f"{r.job_id}  {r.state:<8} {r.where()}")
        return 0
    if not args.resume and not args.packages:
        raise ConfigError(
            "name a flash package, or --resume", hint="vci flash --status shows the journal"
        )
    from firmware_py.uds.flash.sequencer import FlashOptions

    trusted = _trusted(args)
    ecu = args.ecu
    if not args.resume and len(args.packages) == 1 and not ecu:
        ecu = load_package_file(args.packages[0], trusted).ecu_name
    params: dict[str, Any] = (
        {"resume": True} if args.resume else {"packages": [str(p) for p in args.packages]}
    )
    if args.parallel and not args.resume:
        params["parallel"] = True
    services = {
        "store": store,
        "publisher_keys": trusted,
        "flash_options": FlashOptions(min_voltage=args.min_voltage),
    }
    job = run_cli_job(
        cfg,
        transport,
        JobRequest("programming", params, ecu),
        entitlements=entitlement_check(cfg),
        on_event=ProgressPrinter(args.json),
        services=services,
    )
    if sys.stdout.isatty() and not args.json:
        print()
    if job.state is not JobState.DONE:
        err = job.error or {}
        if args.json:
            print(json.dumps({"kind": "job.failed", **err}))
        else:
            print(
                f"error: {err.get('message')}" + (f". {err['hint']}" if err.get("hint") else ""),
                file=sys.stderr,
            )
        return 2
    if not args.json:
        for p in (job.result or {}).get("packages", []):
            if p.get("resumed_from") is not None:
                print(f"{p['ecu']}: resumed at body step {p['resumed_from'] + 1}")
            print(
                f"{p['ecu']}: programmed {p['version']} ({p['bytes']} bytes, {p['seconds']} s) and verified"
            )
    return 0
