"""An update offered over the portal link, end to end: ``vci-portal update-offer`` sends the
signed offer through the real broker to ``vci gateway``, which downloads the bundle from an HTTP
server on 127.0.0.1, checks it and asks for the install (``[update] request_file``) when no job
runs. Refusals (an older version, a key the box does not trust) come back to the portal user.
The bundle is random TEST bytes; RAUC's install is the appliance test's."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal import keys
from portal.remote import RemoteSession
from tests.cloud.conftest import BOX, USER, gateway_env, wait_online, wait_port
from tests.conftest import free_port, start_gateway_process, stop_process

COMPATIBLE = "vci-box-test"


@pytest.fixture
def bundle_server(tmp_path: Path):
    served = tmp_path / "served"
    served.mkdir()
    bundle = served / "vci-2026.12.1.raucb"
    bundle.write_bytes(os.urandom(2 * 2**20))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(served),
         str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port)
    yield bundle, f"http://127.0.0.1:{port}/{bundle.name}"
    stop_process(proc)


def offer(broker, key_dir: Path, bundle: Path, url: str, version: str):
    return subprocess.run(
        [sys.executable, "-m", "portal.cli", "update-offer", BOX, "--bundle", str(bundle),
         "--url", url, "--version", version, "--compatible", COMPATIBLE,
         "--key-dir", str(key_dir), "--broker", f"127.0.0.1:{broker['port']}",
         "--pki", str(broker["pki"]), "--user", USER],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_an_offered_update_is_downloaded_verified_and_its_install_requested(
    box, broker, sim_process, bundle_server, tmp_path
) -> None:
    bundle, url = bundle_server
    release = tmp_path / "release"
    release.write_text("2026.11.0\n")
    request = tmp_path / "run" / "update-request"
    env = {
        **gateway_env(box, broker),
        "VCI_UPDATE_COMPATIBLE": COMPATIBLE,
        "VCI_UPDATE_RELEASE_FILE": str(release),
        "VCI_UPDATE_REQUEST_FILE": str(request),
    }
    gateway = start_gateway_process(sim_process.cli_args("doip"), env)
    try:
        session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
        try:
            wait_online(session, BOX)
        finally:
            session.close()
        # refused: not newer than what runs; signed by a key the box does not trust
        older = offer(broker, box.keys_dir, bundle, url, "2026.11.0")
        assert older.returncode == 2 and "not newer than the installed 2026.11.0" in older.stderr
        keys.generate(tmp_path / "stranger", "test-portal-key")  # same kid, another key
        forged = offer(broker, tmp_path / "stranger", bundle, url, "2026.12.1")
        assert forged.returncode == 2 and "signature is not valid" in forged.stderr, forged
        assert not request.exists() and not (box.root / "state" / "updates").exists()

        taken = offer(broker, box.keys_dir, bundle, url, "2026.12.1")
        assert taken.returncode == 0, taken.stderr
        assert f"offered 2026.12.1 to {BOX}" in taken.stdout
        deadline = time.monotonic() + 60
        while not request.exists():
            assert time.monotonic() < deadline, gateway.output.text()[-3000:]
            time.sleep(0.1)
        kept = Path(request.read_text().strip())
        assert kept.parent == box.root / "state" / "updates"
        assert (
            hashlib.sha256(kept.read_bytes()).hexdigest()
            == hashlib.sha256(bundle.read_bytes()).hexdigest()
        )
        gateway.output.wait_for("install requested", 10)
    finally:
        output = gateway.stop()
    assert "Traceback" not in output
