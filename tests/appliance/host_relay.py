"""One guest connection to a host loopback service: QEMU's user networking runs this for each TCP
connection the VM opens to a ``guestfwd`` address (``guestfwd=tcp:ADDR:PORT-cmd:...``), with
the connection on standard input/output; it connects to ``127.0.0.1:PORT`` (argv[1]) and copies
bytes both ways until either side closes. (A ``guestfwd`` to a ``tcp:`` character device would
take one connection per QEMU run, opened at start: the box's reconnects need one per connection,
and no socat or nc is on the CI host.)"""

from __future__ import annotations

import selectors
import socket
import sys


def main() -> None:
    guest = socket.socket(fileno=0)  # slirp gives the child one end of a socket pair
    host = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    host.settimeout(None)
    sel = selectors.DefaultSelector()
    sel.register(guest, selectors.EVENT_READ, host)
    sel.register(host, selectors.EVENT_READ, guest)
    while True:
        for key, _ in sel.select():
            src: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = src.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                return
            try:
                key.data.sendall(data)
            except OSError:
                return


if __name__ == "__main__":
    main()
