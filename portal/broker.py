"""The mosquitto configuration of broker/ filled in for a directory that holds the PKI and the
ACL (tests, benchmarks and scripts/portal-demo run the broker this way on loopback)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from firmware_py.cloud import topics

TEMPLATE = Path(__file__).parents[1] / "broker" / "mosquitto.conf.in"


def write_config(directory: Path, port: int) -> Path:
    """``directory/mosquitto.conf`` for a broker on 127.0.0.1:``port`` with ``directory``'s
    ca.pem, broker.pem/.key, crl.pem (an empty list is made where there is none) and acl;
    returns its path."""
    if not (directory / "crl.pem").exists():
        from portal import pki

        pki.write_crl(directory, [])  # mosquitto does not start without its crlfile
    conf = TEMPLATE.read_text().replace("@DIR@", str(directory)).replace("@PORT@", str(port))
    if os.geteuid() == 0:
        # as root mosquitto would switch to its own user, who cannot read these files
        conf += "user root\n"
    path = directory / "mosquitto.conf"
    path.write_text(conf)
    return path


def user_acl(user: str, boxes: list[str]) -> str:
    """The ACL lines (broker/acl.example) that let portal user ``user`` serve ``boxes``: write its
    own requests topic, read each box's state and outbox and its own response topic."""
    lines = [f"user {user}"]
    for box in boxes:
        lines += [
            f"topic write {topics.requests(box, user)}",
            f"topic read {topics.state(box)}",
            f"topic read {topics.outbox(box)}",
            f"topic read {topics.responses(box, user)}",
        ]
    return "\n".join(lines) + "\n"


def reloader(pid: int | None, command: str | None) -> Callable[[], None] | None:
    """What tells the broker to read the revocation list (and ACL) again: SIGHUP to ``pid``, or
    ``command`` run without a shell (``systemctl reload mosquitto``); None when neither."""
    if pid is not None:
        return lambda: os.kill(pid, signal.SIGHUP)
    if command:
        argv = shlex.split(command)

        def run() -> None:
            subprocess.run(argv, check=True, timeout=30, capture_output=True)

        return run
    return None
