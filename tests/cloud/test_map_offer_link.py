"""A map update offered over the portal link, end to end: ``vci-portal map offer`` sends the
signed manifest and activation code through the real broker to ``vci gateway``, which checks them
and keeps the offer (a forged one is refused and not kept); ``--install`` then runs the
``map_update`` job of that offer: the box fetches the GENERATED sample package from an HTTP server
on 127.0.0.1, installs it into the simulated head unit and activates it, the portal user reads the
result, and the offer is done with."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from portal import keys, map_cli
from portal.remote import RemoteSession
from tests.cloud.conftest import BOX, USER, gateway_env, wait_online
from tests.cloud.portal_services import portal
from tests.conftest import start_gateway_process
from tests.gateway.map_server import MapServer
from tests.gateway.test_map_update import VIN, head_unit, signed

SIZE = 2 * 2**20


def package_id(package: Path) -> str:
    return hashlib.sha256(package.read_bytes()).hexdigest()[:16]


def test_a_map_update_offered_over_the_link_is_installed_and_activated(
    box, broker, sim_process, tmp_path: Path
) -> None:
    assert box.vci("ticket", "add", box.issue("info-1y")).returncode == 0
    package = map_cli.make_sample(tmp_path / "sample.map", SIZE)
    gateway = start_gateway_process(sim_process.cli_args("doip"), gateway_env(box, broker))
    try:
        session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
        try:
            wait_online(session, BOX)
        finally:
            session.close()
        link = ["--broker", f"127.0.0.1:{broker['port']}", "--pki", str(broker["pki"]),
                "--user", USER]  # fmt: skip
        offers = box.root / "state" / "maps" / "offers"
        with MapServer(package) as server:
            manifest, activation = signed(box, package, server.url)
            args = [
                "map",
                "offer",
                BOX,
                "--manifest",
                str(manifest),
                "--activation",
                str(activation),
            ]
            # signed by a key the box does not trust: refused, nothing kept
            keys.generate(tmp_path / "stranger", "test-portal-key")  # same kid, another key
            forged = tmp_path / "forged.txt"
            forged.write_text(map_cli.publish(
                package, tmp_path / "stranger", None, region="SAMPLE_EUROPE", version="2026-1",
                url=server.url, ecu="HU", address=0x40000000,
            ))  # fmt: skip
            refused = portal("map", "offer", BOX, "--manifest", str(forged), "--activation",
                             str(activation), *link)  # fmt: skip
            assert refused.returncode == 2 and "signature is not valid" in refused.stderr, refused
            assert not offers.exists() or list(offers.iterdir()) == []
            kept = portal(*args, *link)
            assert kept.returncode == 0, kept.stdout + kept.stderr
            assert f"keeps the map offer {package_id(package)}-{VIN}" in kept.stdout
            assert [p.name for p in offers.iterdir()] == [f"{package_id(package)}-{VIN}.json"]
            assert server.log == []  # kept, not fetched: the technician installs it
            sent = portal(*args, "--install", *link, timeout=90)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        job = json.loads(sent.stdout[sent.stdout.index("{") :])["job"]
        assert job["state"] == "done" and job["origin"] == "portal"
        assert job["result"]["vin"] == VIN and job["result"]["active"] == "SAMPLE_EUROPE 2026-1"
        assert [e.start for e in server.log] == [0]
        assert head_unit(sim_process)["active"] == "SAMPLE_EUROPE 2026-1"
        assert list(offers.iterdir()) == []  # installed: the offer is done with
    finally:
        gateway.stop()
