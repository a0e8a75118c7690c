"""``vci-portal content import|show``: load a content set into the portal's database
(docs/content-format.md) and show which one is current. The import validates the whole set first
and loads it in one transaction: a refused set changes nothing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    c = sub.add_parser("content", help="repair information content (import format)").add_subparsers(
        dest="content_command", required=True, metavar="ACTION"
    )
    imp = c.add_parser("import", help="validate a content set (directory or zip) and load it")
    imp.add_argument("source", type=Path, help="the content set's directory or zip file")
    imp.add_argument("--check", action="store_true", help="validate only, load nothing")
    show = c.add_parser("show", help="the current content set")
    for parser in (imp, show):
        parser.add_argument("--db", metavar="URL", help="database URL (default: VCI_PORTAL_DB)")
        parser.set_defaults(account_handler=_run)


def _run(args: argparse.Namespace) -> None:
    from portal.content import format, store
    from portal.db.engine import database_url, open_database

    factory = open_database(database_url(args.db))[1]
    if args.content_command == "import":
        content = format.read(args.source)
        counts = (f"{len(content.instructions)} instructions, {len(content.wiring)} wiring "
                  f"diagrams, {len(content.bulletins)} bulletins and campaigns, "
                  f"{len(content.parts)} parts, {len(content.labour)} labour operations, "
                  f"{len(content.software)} software parts")  # fmt: skip
        if args.check:
            print(f"{content.name} {content.content_version}: valid ({counts})")
            return
        done = store.load(factory, content)
        print(f"imported {done.name} {done.content_version} ({counts})")
        return
    with factory() as session:
        found = store.current(session)
        print("no content imported yet (vci-portal content import DIR)" if found is None else
              f"{found.name} {found.content_version}: {found.documents} documents, "
              f"format {found.format_version}, imported at {found.imported_at}")  # fmt: skip
