"""A map update sent over the portal link, end to end: ``vci-portal map offer`` sends the signed
manifest and activation code through the real broker to ``vci gateway`` as a ``map_update`` job;
the box fetches the GENERATED sample package from an HTTP server on 127.0.0.1, installs it into
the simulated head unit and activates it, and the portal user reads the result."""

from __future__ import annotations

import json
from pathlib import Path

from portal import map_cli
from portal.remote import RemoteSession
from tests.cloud.conftest import BOX, USER, gateway_env, wait_online
from tests.cloud.portal_services import portal
from tests.conftest import start_gateway_process
from tests.gateway.map_server import MapServer
from tests.gateway.test_map_update import VIN, head_unit, signed

SIZE = 2 * 2**20


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
        with MapServer(package) as server:
            manifest, activation = signed(box, package, server.url)
            sent = portal(
                "map", "offer", BOX, "--manifest", str(manifest), "--activation",
                str(activation), "--broker", f"127.0.0.1:{broker['port']}",
                "--pki", str(broker["pki"]), "--user", USER, timeout=90,
            )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        job = json.loads(sent.stdout)["job"]
        assert job["state"] == "done" and job["origin"] == "portal"
        assert job["result"]["vin"] == VIN and job["result"]["active"] == "SAMPLE_EUROPE 2026-1"
        assert [e.start for e in server.log] == [0]
        assert head_unit(sim_process)["active"] == "SAMPLE_EUROPE 2026-1"
    finally:
        gateway.stop()
