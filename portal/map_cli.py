"""``vci-portal map``: navigation map data packages (docs/maps.md).

- ``map sample OUT --size N``: a GENERATED sample package (a sparse file: a short header naming
  it as sample, zeros after it). Map data is the manufacturer's and is never shipped.
- ``map publish FILE``: the package's size and SHA-256 signed with the ticket key in a manifest
  (region, version, URL, target ECU and its map region's address); printed.
- ``map activation --manifest M --vin VIN``: the activation code of that package for one car.
- ``map offer BOX --manifest M --activation A``: sent to the box over its portal link (a
  ``map.offer`` message); the box checks both and keeps the offer until a technician installs it
  on the tablet. With ``--install`` it runs the ``map_update`` job at once (the car connected).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from firmware_py.errors import VciError
from portal import keys

SAMPLE_HEADER = b"VCI SAMPLE MAP DATA - generated for tests and the demo, no real map content\n"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    m = sub.add_parser("map", help="navigation map data packages").add_subparsers(
        dest="map_command", required=True, metavar="ACTION"
    )
    s = m.add_parser("sample", help="make a GENERATED sample map package (sparse file)")
    s.add_argument("out", type=Path)
    s.add_argument("--size", type=int, required=True, help="bytes")
    p = m.add_parser("publish", help="sign a map package's manifest and print it")
    p.add_argument("file", type=Path, help="the map data package")
    p.add_argument("--region", required=True, help="e.g. SAMPLE_EUROPE")
    p.add_argument("--version", required=True, help="e.g. 2026-1")
    p.add_argument("--url", required=True, help="where boxes download it (http or https)")
    p.add_argument("--ecu", default="HU", help="the ECU it is installed into (default HU)")
    p.add_argument(
        "--address", type=lambda t: int(t, 0), default=0x40000000, help="its map region's address"
    )
    a = m.add_parser("activation", help="sign a package's activation code for one car")
    a.add_argument("--manifest", required=True, type=Path, help="file with the signed manifest")
    a.add_argument("--vin", required=True)
    o = m.add_parser(
        "offer", help="offer a map update to a box (kept for the tablet; --install: run it now)"
    )
    o.add_argument("box", help="the box's device id")
    o.add_argument("--manifest", required=True, type=Path)
    o.add_argument("--activation", required=True, type=Path)
    o.add_argument(
        "--install", action="store_true", help="run the map_update job now and print its result"
    )
    o.add_argument("--ticket", help="with --install: the ticket the job runs under")
    o.add_argument("--broker", required=True, metavar="HOST:PORT")
    o.add_argument("--pki", required=True, type=Path)
    o.add_argument("--user", required=True)
    for action in (p, a):
        action.add_argument("--key-dir", required=True, type=Path)
        action.add_argument("--kid", help="signing key id (default: the newest key)")


def make_sample(out: Path, size: int) -> Path:
    """A sample package of ``size`` bytes: the header, then a hole (sparse: takes no disk)."""
    if size < len(SAMPLE_HEADER):
        raise ValueError(f"a sample package has at least {len(SAMPLE_HEADER)} bytes")
    with out.open("wb") as f:
        f.write(SAMPLE_HEADER)
        f.truncate(size)
    return out


def publish(
    path: Path, key_dir: Path, kid: str | None, *, region: str, version: str, url: str,
    ecu: str, address: int,
) -> str:  # fmt: skip
    from firmware_py.gateway.map_package import sign_manifest

    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    kid, key = keys.load_signing_key(key_dir, kid)
    return sign_manifest(
        key, kid, region=region, version=version, url=url, size=size,
        sha256=digest.hexdigest(), ecu=ecu, address=address,
    )  # fmt: skip


def activation(manifest_token: str, key_dir: Path, kid: str | None, vin: str) -> str:
    from firmware_py.gateway.map_package import parse_manifest, sign_activation

    kid, key = keys.load_signing_key(key_dir, kid)
    manifest = parse_manifest(manifest_token, {kid: key.public_key()})
    return sign_activation(key, kid, vin=vin, manifest=manifest)


def run(args: argparse.Namespace) -> int:
    try:
        if args.map_command == "sample":
            print(make_sample(args.out, args.size))
        elif args.map_command == "publish":
            print(publish(
                args.file, args.key_dir, args.kid, region=args.region, version=args.version,
                url=args.url, ecu=args.ecu, address=args.address,
            ))  # fmt: skip
        elif args.map_command == "activation":
            print(activation(args.manifest.read_text().strip(), args.key_dir, args.kid, args.vin))
        else:
            return _offer(args)
    except (OSError, ValueError, VciError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _offer(args: argparse.Namespace) -> int:
    from firmware_py.cloud.schema import Message
    from portal.remote import RemoteError, RemoteSession

    body = {
        "manifest": args.manifest.read_text().strip(),
        "activation": args.activation.read_text().strip(),
    }
    host, _, port = args.broker.rpartition(":")
    session = RemoteSession(host, int(port), args.pki, args.user)
    try:
        answer = session.exchange(args.box, Message("map.offer", body), 10.0)
        if answer.type != "map.offered":
            print(f"error: the box refused the map offer: {answer.body.get('message')}",
                  file=sys.stderr)  # fmt: skip
            return 2
        print(f"{args.box} keeps the map offer {answer.body.get('offer')} "
              f"({answer.body.get('map')} for {answer.body.get('vin')})")  # fmt: skip
        if not args.install:
            return 0
        final = session.run(
            args.box, "map_update", params={"offer": str(answer.body.get("offer"))},
            ticket=args.ticket, timeout=3600.0,
        )  # fmt: skip
    except RemoteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        session.close()
    print(json.dumps({"type": final.type, **final.body}, indent=2, default=str))
    ok = final.type == "job.result" and (final.body.get("job") or {}).get("state") == "done"
    return 0 if ok else 2
