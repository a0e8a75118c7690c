"""Run in the VM by test_vm_portal.py: a TLS handshake and an MQTT CONNECT with the box's own
certificate and key, to the portal's broker as the box reaches it, until the broker's verdict
changes from ``ok`` (or ``--once``); prints the last verdict (``ok`` or the error).

Usage: broker_handshake.py HOST PORT CA CERT KEY [--once | --until-refused SECONDS]"""

from __future__ import annotations

import socket
import ssl
import sys
import time

CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0])


def verdict(host: str, port: int, ca: str, cert: str, key: str) -> str:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    # TLS 1.2: the broker's verdict on our certificate (its alert) comes within the handshake
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(CONNECT)
            answer = tls.recv(4)
            return "ok" if answer[:1] == b"\x20" else f"no CONNACK: {answer!r}"
    except (ssl.SSLError, OSError) as err:
        return str(err)


def main() -> None:
    host, port, ca, cert, key, mode = sys.argv[1:7]
    deadline = time.monotonic() + (float(sys.argv[7]) if mode == "--until-refused" else 0)
    while True:
        found = verdict(host, int(port), ca, cert, key)
        if mode == "--once" or found != "ok" or time.monotonic() > deadline:
            print(found)
            return
        time.sleep(0.2)


if __name__ == "__main__":
    main()
