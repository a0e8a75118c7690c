"""``vci-portal packages``: the operator's command line for the package store (portal/packages.py).

- ``packages add FILE --publisher-keys DIR``: takes a signed flash package into the store if its
  publisher's signature verifies with the keys the boxes trust (a changed package is refused).
- ``packages list``: what the store holds (ECU, version, size, SHA-256).

``vci-portal serve --publisher-keys DIR`` serves the same store to boxes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firmware_py.errors import PackageError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "packages", help="the package store of signed flash packages"
    ).add_subparsers(dest="packages_command", required=True, metavar="ACTION")
    a = p.add_parser("add", help="take a signed .vcipkg into the store (signature checked)")
    a.add_argument("file", type=Path)
    a.add_argument("--name", help="its name in the store (default: the file's)")
    ls = p.add_parser("list", help="the packages in the store")
    for action in (a, ls):
        action.add_argument(
            "--publisher-keys", type=Path, metavar="DIR", required=action is a,
            help="the flash-package publishers' public keys the boxes trust (<kid>.pub)",
        )  # fmt: skip
        action.add_argument("--db", metavar="URL", help="the portal's database")


def run(args: argparse.Namespace) -> int:
    from firmware_py.keys import load_public_keys
    from portal.db.engine import database_url, open_database, state_dir
    from portal.packages import PackageStore

    trusted = load_public_keys(args.publisher_keys) if args.publisher_keys else {}
    store = PackageStore(open_database(database_url(args.db))[1], state_dir() / "packages", trusted)
    if args.packages_command == "add":
        try:
            with args.file.open("rb") as f:
                info = store.add(f, args.name or args.file.name)
        except (PackageError, OSError) as err:
            print(f"error: the package is refused: {err}", file=sys.stderr)
            return 1
        print(f"{info.name}: {info.ecu} {info.version}, {info.size} bytes, sha256 {info.sha256}")
        return 0
    for info in store.list():
        expects = ",".join(info.sw_versions) or "-"
        print(f"{info.sha256[:16]}  {info.ecu:<6} {info.version:<12} {info.size:>10}  "
              f"{info.name}  (expects {expects}; publisher {info.publisher})")  # fmt: skip
    return 0
