"""A flash started from the portal through a latency proxy (100 ms each way between the box and
the broker) beside the same flash started locally, and a raw UDS request's round trip through the
broker (and through the WebSocket bridge, behind the same proxy) beside the same request made
locally; all in the same run, all on loopback.

Needs mosquitto. Run: PYTHONPATH=. python bench/bench_remote.py
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Sim
from bench.latency_proxy import start_in_thread
from firmware_py.config import TransportConfig
from firmware_py.keys import load_private_key
from firmware_py.uds.flash.package import SequenceParams, build_package
from firmware_py.uds.vehicle import VehicleSession
from portal import keys, pki
from portal.broker import user_acl, write_config
from portal.remote import RemoteSession

BOX, USER = "box-bench", "portal-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--megabytes", type=int, default=1, help="image size (1 KiB blocks, 6 ms per block)"
    )
    parser.add_argument(
        "--delay", type=float, default=0.100, help="WAN delay each way, seconds (default 0.1)"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vci-bench-remote-"))
    d = root / "pki"
    pki.make_ca(d)
    pki.issue(d, "broker", server=True)
    pki.issue(d, BOX)
    pki.issue(d, USER)
    pki.issue(d, "ws-bridge")
    acl = (Path(__file__).parents[1] / "broker" / "acl.example").read_text()
    (d / "acl").write_text(acl + "\n" + user_acl(USER, [BOX]))  # the product's ACL
    port = free_port()
    write_config(d, port)
    broker = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(d / "mosquitto.conf")],
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    wan = start_in_thread(port, args.delay)  # the box's WAN link to the broker

    keys.generate(root / "publisher", "bench-publisher")
    kid, key = load_private_key(root / "publisher" / "bench-publisher.key")
    state = root / "state"
    (state / "packages").mkdir(parents=True)
    image = (b"VCIS" + b"12.05.00".ljust(16, b" ")).ljust(64, b"\0") + os.urandom(
        args.megabytes * 1024 * 1024 - 64
    )
    package = state / "packages" / "dme.vcipkg"
    package.write_bytes(
        build_package(
            ecu_name="DME",
            ecu_address=0x12,
            version="12.05.00",
            segments=[(0x00100000, image)],
            key=key,
            kid=kid,
            sequence=SequenceParams(max_block_length=0x402),
        )
    )
    sim = Sim("--battery", "13.6", "--fault", "delay:DME=0.006")  # an ECU that takes 6 ms per block
    env = {
        **os.environ,
        "VCI_STORAGE_STATE_DIR": str(state),
        "VCI_SECURITY_TICKETS": "off",
        "VCI_DEVICE_ID": BOX,
        "VCI_SECURITY_PUBLISHER_KEYS_DIR": str(root / "publisher"),
        "VCI_CLOUD_BROKER_HOST": "127.0.0.1",
        "VCI_CLOUD_BROKER_PORT": str(wan),
        "VCI_CLOUD_CA_FILE": str(d / "ca.pem"),
        "VCI_CLOUD_CERT_FILE": str(d / f"{BOX}.pem"),
        "VCI_CLOUD_KEY_FILE": str(d / f"{BOX}.key"),
    }
    doip = ["--doip", f"{sim.host}:{sim.port}"]
    children: list[subprocess.Popen[Any]] = []  # stopped whatever happens
    try:
        local = subprocess.run(
            [sys.executable, "-m", "firmware_py", "--json", "flash", str(package), *doip],
            env={**env, "VCI_CLOUD_BROKER_HOST": ""},
            capture_output=True,
            text=True,
            timeout=300,
        )
        result = [json.loads(line) for line in local.stdout.splitlines() if '"job.done"' in line][
            -1
        ]
        local_seconds = result["seconds"]  # the whole job, as the local user waits for it
        local_flash_seconds = result["result"]["packages"][0]["seconds"]
        gateway = subprocess.Popen(
            [sys.executable, "-m", "firmware_py", "gateway", "--port", str(free_port()), *doip],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        children.append(gateway)
        session = RemoteSession("127.0.0.1", port, d, USER)
        deadline = time.monotonic() + 20
        while session.boxes_online(0.3).get(BOX) != "online" and time.monotonic() < deadline:
            pass
        started = time.monotonic()
        final = session.run(
            BOX, "programming", ecu="DME", params={"package": package.name}, timeout=300
        )
        remote_seconds = time.monotonic() - started
        assert final.body["job"]["state"] == "done", final.body
        remote_job_seconds = final.body["job"]["finished"] - final.body["job"]["created"]
        remote_flash_seconds = final.body["job"]["result"]["packages"][0]["seconds"]

        rtts = []
        for _ in range(30):
            t = time.monotonic()
            answer = session.uds(BOX, "EGS", bytes.fromhex("22F190"), timeout=10)
            rtts.append(time.monotonic() - t)
            assert answer.body.get("response", "").startswith("62f190"), answer.body
        vehicle = VehicleSession.open(
            TransportConfig(doip_host=sim.host, doip_port=sim.port), "doip"
        )
        locals_ = []
        for _ in range(200):
            t = time.monotonic()
            vehicle.ecu("EGS").raw(bytes.fromhex("22F190"))
            locals_.append(time.monotonic() - t)
        vehicle.close()
        gateway.terminate()
        gateway.wait(timeout=30)

        # the same requests with the box on the WebSocket fallback (bridge behind the same WAN)
        bridge_port = free_port()
        bridge = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portal.cli",
                "ws-bridge",
                "--listen",
                f"127.0.0.1:{bridge_port}",
                "--broker",
                f"127.0.0.1:{port}",
                "--pki",
                str(d),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        children.append(bridge)
        assert bridge.stdout is not None and "ready" in bridge.stdout.readline()
        bridge_wan = start_in_thread(bridge_port, args.delay)
        gateway = subprocess.Popen(
            [sys.executable, "-m", "firmware_py", "gateway", "--port", str(free_port()), *doip],
            env={
                **env,
                "VCI_CLOUD_TRANSPORT": "websocket",
                "VCI_CLOUD_WS_URL": f"wss://127.0.0.1:{bridge_wan}/vci/box",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        children.append(gateway)
        session.states.pop(BOX, None)
        deadline = time.monotonic() + 20
        while session.states.get(BOX) != "online" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert session.states.get(BOX) == "online", "the box did not come online through the bridge"
        ws_rtts = []
        for _ in range(30):
            t = time.monotonic()
            answer = session.uds(BOX, "EGS", bytes.fromhex("22F190"), timeout=10)
            ws_rtts.append(time.monotonic() - t)
            assert answer.body.get("response", "").startswith("62f190"), answer.body
        session.close()
        gateway.terminate()
        gateway.wait(timeout=30)
        bridge.terminate()
        bridge.wait(timeout=10)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                child.wait(timeout=30)
        sim.close()
        broker.terminate()

    def p99(values: list[float]) -> float:
        return sorted(values)[max(0, int(len(values) * 0.99) - 1)]

    print(
        f"Remote programming through the portal, {args.delay * 1000:.0f} ms each way between box and broker (loopback proxy), {args.megabytes} MiB, 1 KiB blocks"
    )
    print(
        f"  started locally (vci flash on the box, whole job):   {local_seconds:6.2f} s  (of it writing the ECU {local_flash_seconds:.2f} s)"
    )
    print(
        f"  started from the portal (request to result):        {remote_seconds:6.2f} s  ratio {remote_seconds / local_seconds:.3f} (target <= 1.05)"
    )
    print(
        f"  the remote job on the box (whole job):              {remote_job_seconds:6.2f} s  (of it writing the ECU {remote_flash_seconds:.2f} s)"
    )
    print("Raw UDS request 22 F190 to the EGS")
    print(
        f"  through the broker (MQTT):    median {statistics.median(rtts) * 1000:7.1f} ms, p99 {p99(rtts) * 1000:7.1f} ms ({len(rtts)} requests)"
    )
    print(
        f"  through the WebSocket bridge: median {statistics.median(ws_rtts) * 1000:7.1f} ms, p99 {p99(ws_rtts) * 1000:7.1f} ms ({len(ws_rtts)} requests)"
    )
    print(
        f"  locally on the box:           median {statistics.median(locals_) * 1000:7.3f} ms, p99 {p99(locals_) * 1000:7.3f} ms ({len(locals_)} requests)"
    )


if __name__ == "__main__":
    main()
