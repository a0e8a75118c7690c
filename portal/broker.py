"""The mosquitto configuration of broker/ filled in for a directory that holds the PKI and the
ACL (tests, benchmarks and scripts/portal-demo run the broker this way on loopback)."""

from __future__ import annotations

import os
from pathlib import Path

TEMPLATE = Path(__file__).parents[1] / "broker" / "mosquitto.conf.in"


def write_config(directory: Path, port: int) -> Path:
    """``directory/mosquitto.conf`` for a broker on 127.0.0.1:``port`` with ``directory``'s
    ca.pem, broker.pem/.key and acl; returns its path."""
    conf = TEMPLATE.read_text().replace("@DIR@", str(directory)).replace("@PORT@", str(port))
    if os.geteuid() == 0:
        # as root mosquitto would switch to its own user, who cannot read these files
        conf += "user root\n"
    path = directory / "mosquitto.conf"
    path.write_text(conf)
    return path
