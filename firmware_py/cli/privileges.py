"""``vci`` run by root on the box acts as the owner of the state directory (the gateway's user,
``vci``), so that no file in it is ever made by root.

A technician on the box types ``sudo vci identify``; the command keeps its tickets, outbox and
traces in the gateway's state directory, and an SQLite database, a WAL file or a trace made there
by root is one the gateway (running as ``vci``, without capabilities) cannot write again: it then
fails at every start ("attempt to write a readonly database"). The appliance test met exactly
that: a ``vci identify`` run as root before the gateway's first start. So the whole run switches
to the directory's owner before it touches anything, unless the command needs root itself.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

KEEPS_ROOT = frozenset({"update", "sim"})
"""commands that need root (RAUC, the slots) or keep no state"""


def needs_root(args: argparse.Namespace) -> bool:
    if args.command in KEEPS_ROOT:
        return True
    # first boot's second step sets the hostname (systemd runs it with full privileges)
    return args.command == "firstboot" and bool(getattr(args, "set_hostname", False))


def state_dir_of(args: argparse.Namespace) -> Path | None:
    given = getattr(args, "state_dir", None)
    if given:
        return Path(given)
    from firmware_py.config import load_config
    from firmware_py.errors import VciError

    try:
        return load_config(
            Path(args.config) if getattr(args, "config", None) else None
        ).storage.state_dir
    except VciError:
        return None  # the command says what is wrong with the configuration


def run_as_state_owner(args: argparse.Namespace) -> str | None:
    """As root, switch to the owner of the state directory (user and group, its groups too);
    the user's name, or None when nothing changed (not root, a command that needs root, no such
    directory, or one root owns)."""
    if os.geteuid() != 0 or needs_root(args):
        return None
    state_dir = state_dir_of(args)
    try:
        st = os.stat(state_dir) if state_dir is not None else None
    except OSError:
        return None
    if st is None or st.st_uid == 0:
        return None
    import pwd

    try:
        name = pwd.getpwuid(st.st_uid).pw_name
        os.initgroups(name, st.st_gid)
    except KeyError:
        name = str(st.st_uid)
        os.setgroups([])
    os.setgid(st.st_gid)
    os.setuid(st.st_uid)
    return name
