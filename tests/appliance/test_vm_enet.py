"""The box on the car's Ethernet (ENET) in the VM: a veth pair, the box's end as eth0 set up by
the image's systemd-networkd file (DHCP and IPv4 link-local, no default route), the other end
in a network namespace standing for the car, which takes an Auto-IP address (169.254.x.x) and
runs ``vci sim`` there. ``vci identify`` with the box's own configuration (/etc/vci/vci.toml:
identification by broadcast) finds the car over DoIP and over HSFZ."""

from __future__ import annotations

import json

import pytest

from tests.appliance.conftest import VCI, Vm


def test_enet_link_is_link_local_without_default_route(enet_vm: Vm) -> None:
    assert "default" not in enet_vm.check("ip -4 route show dev eth0")


@pytest.mark.parametrize("protocol", ["doip", "hsfz"])
def test_identify_finds_the_car_on_enet_by_broadcast(enet_vm: Vm, protocol: str) -> None:
    only = "--no-hsfz" if protocol == "doip" else "--no-doip"
    enet_vm.start_sim(
        f"enet-{protocol}", "--host", "0.0.0.0", "--no-can", "--control-port", "0",
        "--announce-to", "", only, netns="car",
    )  # fmt: skip
    try:
        with enet_vm.timed(f"check: vci identify over ENET ({protocol}, auto, broadcast)"):
            result = enet_vm.run(f"{VCI} --json identify", timeout=120)
        assert result.rc == 0, result
        identified = json.loads(result.out)
        assert identified["vin"] == "WBAJA71090B123456"
    finally:
        enet_vm.stop_sims()


def test_page_is_not_reachable_from_the_car(enet_vm: Vm) -> None:
    enet_vm.wait_for(
        '[ "$(systemctl show -p SubState --value vci-gateway.service)" = running ]',
        240,
        "gateway ready",
    )
    # the page is up on the box's Wi-Fi address ...
    assert (
        enet_vm.check(
            "curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://192.168.73.1:8080/"
        )
        != "000"
    )
    box = enet_vm.check("ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1").strip()
    # ... but not from the car: neither on the box's ENET address nor on its Wi-Fi address
    # routed through the ENET link (a Linux host answers for any of its addresses on any link)
    enet_vm.check(f"ip -n car route replace 192.168.73.0/24 via {box} dev enet")
    with enet_vm.timed("check: the page is not reachable from the car's side"):
        for url in (f"http://{box}:8080/", "http://192.168.73.1:8080/", f"http://{box}:80/"):
            result = enet_vm.run(f"ip netns exec car curl -s -o /dev/null --max-time 5 {url}", 30)
            assert result.rc != 0, f"{url} answered the car: {result}"


SCAN = """
import select, socket, sys
host, ports = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
pending, opened = {}, []
for port in ports:
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((host, port))
    pending[s] = port
_, writable, _ = select.select([], list(pending), [], 3.0)
for s in writable:
    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
        opened.append(pending[s])
print(",".join(map(str, sorted(opened))))
"""


def test_no_listening_port_of_the_box_answers_the_car(enet_vm: Vm) -> None:
    """The class behind the page check: every TCP port the box listens on, on any address
    (the page, the ENET bridge, systemd-resolved ...), is tried from the car's side at once;
    none may accept (nftables drops what comes in on eth0 beyond the car's answers)."""
    enet_vm.wait_for(
        '[ "$(systemctl show -p SubState --value vci-gateway.service)" = running ]',
        240,
        "gateway ready",
    )
    listening = enet_vm.check("ss -Htln | awk '{print $4}'").split()
    ports = sorted({int(a.rsplit(":", 1)[1]) for a in listening} | {22, 80, 443})
    assert 8080 in ports  # the page is among them
    box = enet_vm.check("ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1").strip()
    enet_vm.check(f"cat > /tmp/scan.py <<'EOF'\n{SCAN}\nEOF")
    # the box's Wi-Fi address too, routed over the ENET link (a host answers for any address)
    enet_vm.check(f"ip -n car route replace 192.168.73.0/24 via {box} dev enet")
    # the scan sees an open port where there is one (from the box itself)
    assert enet_vm.check("python3 /tmp/scan.py 192.168.73.1 8080").strip() == "8080"
    with enet_vm.timed(f"check: none of the box's {len(ports)} TCP listeners answers the car"):
        for target in (box, "192.168.73.1"):
            opened = enet_vm.check(
                f"ip netns exec car python3 /tmp/scan.py {target} {','.join(map(str, ports))}"
            )
            assert opened.strip() == "", f"{target}: ports {opened.strip()} answered the car"
