"""The booted box and the portal on the host (docs/claiming.md, docs/update.md): one VM booted
through OVMF and GRUB (RAUC's A/B slots) whose only network is QEMU's user networking with
``restrict=on`` and a forward per service to the host's loopback (HOST_ADDRESS): the portal's
mosquitto (TLS, client certificates, revocation list), its enrolment endpoint and an HTTP server
with the bundle, all started here (tests/cloud/portal_services.py, bundle_server.py).

The box's portal settings (broker, enrolment URL, the portal's CA) are a systemd drop-in in /run
(RUN_CONFIG): the test image is the product's, whose /etc/vci/vci.toml names no portal, and its
root is read-only; a real box has them in its image's vci.toml. /run is emptied by a reboot, so
the test puts them back after the update's reboot (the identity, on the data partition, stays).

In order, on one VM:
  a. first boot made the box's identity on the data partition; told the portal, it asks to enrol;
  b. the workshop claims it with ``vci-portal box claim`` (device id and label code read from the
     box's label data); the running gateway gets its certificate and links up; a second claim is
     refused;
  c. the portal offers a bundle; the download is broken off once and goes on with a Range
     request; the box installs it, reboots on trial, marks it good, links up again with the same
     identity and state, and says (over the link) that it runs the new version;
  d. (an offer during a job waits for the job's end: tests/gateway/test_updates.py, in a process
     on the host; a job in the VM needs a car and a ticket, minutes of TCG time for no more)
  e. the portal revokes the box: the broker refuses its certificate, the box stays offline.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from firmware_py.identity import derived_device_id
from portal import keys
from portal.remote import RemoteSession
from tests.appliance.bundle_server import BundleServer
from tests.appliance.conftest import (
    HOST_ADDRESS,
    REBOOT_TIMEOUT,
    Vm,
    put,
    rauc_status,
    record,
    release_keys,
    running,
    version,
    wait_healthy,
)
from tests.appliance.update_bundles import OFFERED_VERSION, make_offered_bundle
from tests.cloud.portal_services import (
    HAVE_MOSQUITTO,
    USER,
    EnrolPortal,
    portal,
    running_broker,
    running_enrol_portal,
    serve_box,
    wait_online,
)

if not HAVE_MOSQUITTO:
    pytest.skip("mosquitto is not installed (scripts/test installs it)", allow_module_level=True)

BROKER_PORT, ENROL_PORT, BUNDLE_PORT = 8883, 8443, 8080
"""the services' ports on HOST_ADDRESS, as the box sees them"""
RUN_CONFIG = "/run/systemd/system/vci-gateway.service.d/50-test-portal.conf"
CA = "/run/vci-test-portal/ca.pem"
STATE = "/var/lib/vci"
KID = "test-portal"
SCRIPTS = Path(__file__).with_name("vm_scripts")
ONLINE_TIMEOUT = 180.0
"""from the claim (or a gateway start) to the portal seeing the box online, under TCG"""
DOWNLOAD_TIMEOUT = 420.0
"""from the offer to the verified bundle (260 MiB through QEMU's user networking, under TCG)"""
INSTALL_TIMEOUT = 300.0 + REBOOT_TIMEOUT
"""from the install request to the agent answering from the new slot: RAUC, reboot"""


@dataclass
class PortalBox:
    vm: Vm
    broker: dict[str, Any]
    enrol: EnrolPortal
    bundles: BundleServer
    bundle: Path
    keys: Path
    device: str = ""


@pytest.fixture(scope="module")
def portal_box(
    appliance_image: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PortalBox]:
    work = tmp_path_factory.mktemp("portal")
    t0 = time.monotonic()
    bundle = make_offered_bundle(appliance_image.parent, release_keys(), work)
    record(f"portal: bundle {OFFERED_VERSION} made (image/bundle --fast)", time.monotonic() - t0)
    print(f"appliance: bundle offered.raucb: {bundle.stat().st_size / 2**20:.0f} MiB", flush=True)
    keys.generate(work / "portal-keys", KID)
    with contextlib.ExitStack() as stack:
        stack.callback(bundle.unlink, missing_ok=True)  # 300 MB, not kept after the module
        broker = stack.enter_context(running_broker(work / "pki", hosts=(HOST_ADDRESS,)))
        enrol = stack.enter_context(
            running_enrol_portal(broker["pki"], work / "boxes.sqlite", work / "enrol.log")
        )
        # the first download breaks off a third of the way
        bundles = stack.enter_context(BundleServer(bundle, cut_after=bundle.stat().st_size // 3))
        machine = Vm(
            appliance_image,
            work,
            efi=True,
            disk_gib=3.0,  # the bundle downloaded into /data, the slot RAUC writes
            host_services={
                BROKER_PORT: broker["port"],
                ENROL_PORT: enrol.port,
                BUNDLE_PORT: bundles.port,
            },
        )
        vm = stack.enter_context(
            running(machine, "portal: boot through OVMF + GRUB (user networking to the host)")
        )
        yield PortalBox(vm, broker, enrol, bundles, bundle, work / "portal-keys")


def link_to_portal(box: PortalBox) -> None:
    """The portal's settings for the gateway (a drop-in in /run, see the module's docstring),
    its CA and ticket key (the key that signs offers); the gateway restarted to read them."""
    vm = box.vm
    vm.check(f"mkdir -p -m 0755 {Path(CA).parent} {Path(RUN_CONFIG).parent} /etc/vci/portal-keys")
    put(vm, CA, (box.broker["pki"] / "ca.pem").read_bytes())
    put(vm, f"/etc/vci/portal-keys/{KID}.pub", (box.keys / f"{KID}.pub").read_bytes())
    settings = {
        "VCI_CLOUD_BROKER_HOST": HOST_ADDRESS,
        "VCI_CLOUD_BROKER_PORT": str(BROKER_PORT),
        "VCI_CLOUD_CA_FILE": CA,
        "VCI_CLOUD_ENROL_URL": f"https://{HOST_ADDRESS}:{ENROL_PORT}/vci/enrol",
        "VCI_CLOUD_ENROL_INTERVAL": "2",
        "VCI_CLOUD_TRANSPORT": "mqtt",
    }
    conf = "[Service]\n" + "".join(f"Environment={k}={v}\n" for k, v in settings.items())
    put(vm, RUN_CONFIG, conf.encode())
    vm.check("systemctl daemon-reload && systemctl restart vci-gateway.service", 240)


def gateway_pid(vm: Vm) -> str:
    return vm.check("systemctl show -p MainPID --value vci-gateway.service").strip()


def session(box: PortalBox) -> RemoteSession:
    return RemoteSession("127.0.0.1", box.broker["port"], box.broker["pki"], USER)


def offer(box: PortalBox, compatible: str) -> Any:
    return portal(
        "update-offer", box.device, "--bundle", str(box.bundle),
        "--url", f"http://{HOST_ADDRESS}:{BUNDLE_PORT}/{box.bundle.name}",
        "--version", OFFERED_VERSION, "--compatible", compatible,
        "--key-dir", str(box.keys), "--kid", KID, "--broker", f"127.0.0.1:{box.broker['port']}",
        "--pki", str(box.broker["pki"]), "--user", USER,
    )  # fmt: skip


def test_first_boot_made_the_identity_and_the_box_asks_to_enrol(portal_box: PortalBox) -> None:
    box, vm = portal_box, portal_box.vm
    with vm.timed("portal: first boot healthy, slot A marked good"):
        wait_healthy(vm)
    # the device id is the machine-id's app-specific form, kept on the data partition
    machine_id = vm.check("cat /etc/machine-id").strip()
    local = box.bundle.parent / "machine-id"
    local.write_text(machine_id + "\n")
    expected = derived_device_id(cpuinfo=local.with_name("no-cpuinfo"), machine_id=local)
    box.device = vm.check(f"cat {STATE}/identity/device-id").strip()
    assert expected is not None and box.device == expected
    assert vm.check(f"stat -c '%a %U' {STATE}/identity/box.key").split() == ["600", "vci"]
    assert vm.check(f"findmnt -n -o SOURCE -T {STATE}/identity").startswith("/dev/vda4")
    assert vm.run(f"test -e {STATE}/identity/box.pem").rc != 0

    link_to_portal(box)
    with vm.timed("portal: gateway (re)started -> the box asks to enrol"):
        box.enrol.wait_waiting(box.device, timeout=ONLINE_TIMEOUT)
    # what the portal got is the request, never the key
    key = vm.check(f"cat {STATE}/identity/box.key")
    secret = "".join(key.splitlines()[1:-1])
    assert secret and secret not in box.enrol.db.read_bytes().decode(errors="replace")


def test_the_workshop_claims_the_box_which_links_up_without_a_restart(
    portal_box: PortalBox,
) -> None:
    box, vm = portal_box, portal_box.vm
    assert box.device, "needs the test before"
    code = vm.check(f"cat {STATE}/label-code").strip()  # the label's data, as printed
    pid = gateway_pid(vm)
    serve_box(box.broker, USER, box.device)  # the workshop's portal user serves its box
    user = session(box)
    try:
        claim = box.enrol.box("claim", box.device, code)
        assert claim.returncode == 0, claim.stderr
        with vm.timed("portal: claimed -> the box gets its certificate and is online"):
            wait_online(user, box.device, timeout=ONLINE_TIMEOUT)
    finally:
        user.close()
    assert gateway_pid(vm) == pid  # the same gateway process: no restart
    cert = x509.load_pem_x509_certificate(vm.check(f"cat {STATE}/identity/box.pem").encode())
    csr = x509.load_pem_x509_csr(vm.check(f"cat {STATE}/identity/box.csr").encode())
    assert cert.public_key() == csr.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == box.device

    again = box.enrol.box("claim", box.device, code)
    assert again.returncode == 2 and "already claimed" in again.stderr, again.stderr


def test_an_offered_bundle_is_fetched_resumed_installed_and_the_box_links_up_again(
    portal_box: PortalBox,
) -> None:
    box, vm = portal_box, portal_box.vm
    assert box.device, "needs the tests before"
    token = secrets.token_hex(8)
    vm.check(f"echo {token} > {STATE}/portal-probe && sync")
    identity = vm.check(f"sha256sum {STATE}/identity/box.key {STATE}/identity/box.pem")
    compatible = vm.check("sed -n 's/^compatible=//p' /etc/rauc/system.conf").strip()
    old = vm.boot_id()
    offered = offer(box, compatible)
    assert offered.returncode == 0, offered.stderr
    assert f"offered {OFFERED_VERSION} to {box.device}" in offered.stdout
    requested = f"update {OFFERED_VERSION} downloaded and verified: install requested"
    with vm.timed("portal: offer -> downloaded (broken once, resumed) and verified"):
        vm.wait_for(
            f"journalctl -b -u vci-gateway.service -o cat --no-pager | grep -qF {shlex.quote(requested)}",
            DOWNLOAD_TIMEOUT,
            "the gateway downloaded and verified the offered bundle",
        )
    with vm.timed("portal: install requested -> RAUC -> reboot to the agent"):
        vm.wait_reboot(old, INSTALL_TIMEOUT)
    with vm.timed("portal: new slot healthy and marked good"):
        wait_healthy(vm)
    # the download: the first request broken off, the next one went on from the bytes kept
    ranges = box.bundles.ranges
    assert ranges[0] is None and len(ranges) >= 2, ranges
    assert ranges[1] is not None and ranges[1].startswith("bytes="), ranges
    assert 0 < int(ranges[1].removeprefix("bytes=").rstrip("-")) <= box.bundle.stat().st_size // 3
    # the new slot, kept; the identity and the state are the data partition's, untouched
    assert version(vm) == OFFERED_VERSION
    status = rauc_status(vm)
    assert status["_"]["booted"] == "B" and status["B"]["boot_status"] == "good"
    assert vm.check(f"sha256sum {STATE}/identity/box.key {STATE}/identity/box.pem") == identity
    assert vm.check(f"cat {STATE}/portal-probe").strip() == token
    assert vm.check(f"cat {STATE}/identity/device-id").strip() == box.device

    link_to_portal(box)  # /run was emptied by the reboot
    user = session(box)
    try:
        with vm.timed("portal: after the update, gateway started -> online again"):
            wait_online(user, box.device, timeout=ONLINE_TIMEOUT)
    finally:
        user.close()
    # the installed bundle no longer takes space on the data partition
    assert vm.check(f"ls {STATE}/updates/ 2>/dev/null | grep -c raucb || true").strip() == "0"
    # asked over the link, the box says it runs the new version (the same offer is not newer)
    again = offer(box, compatible)
    assert again.returncode == 2, again.stdout + again.stderr
    assert f"not newer than the installed {OFFERED_VERSION}" in again.stderr, again.stderr


def test_a_revoked_box_can_no_longer_connect(portal_box: PortalBox) -> None:
    box, vm = portal_box, portal_box.vm
    assert box.device, "needs the tests before"
    script = "/run/vci-test-portal/broker_handshake.py"
    put(vm, script, (SCRIPTS / "broker_handshake.py").read_bytes())
    handshake = (
        f"/opt/vci/venv/bin/python {script} {HOST_ADDRESS} {BROKER_PORT} {CA} "
        f"{STATE}/identity/box.pem {STATE}/identity/box.key"
    )
    assert vm.check(f"{handshake} --once").strip() == "ok"

    pid = str(box.broker["proc"].pid)
    revoked = box.enrol.box("revoke", box.device, "--broker-pid", pid)
    assert revoked.returncode == 0, revoked.stderr
    # mosquitto reads the revocation list on SIGHUP, between two of its loops
    verdict = vm.check(f"{handshake} --until-refused 30", 60).strip()
    assert "revoked" in verdict, verdict
    # the gateway, started again, does not get back in: the portal sees it offline
    vm.check("systemctl restart vci-gateway.service", 240)
    user = session(box)
    try:
        deadline = time.monotonic() + 60
        while (state := user.boxes_online(0.5).get(box.device)) != "offline":
            assert time.monotonic() < deadline, f"the box's state is still {state!r}"
        # the box says why in its journal, and stays offline at its next attempts
        vm.wait_for(
            "journalctl -b -u vci-gateway.service -o cat --no-pager --since=-5min "
            "| grep 'cannot link' | grep -q 'certificate revoked'",
            60,
            "the gateway's log says the broker refused the revoked certificate",
        )
        assert user.boxes_online(2.0).get(box.device) == "offline"
    finally:
        user.close()
    assert "already revoked" in box.enrol.box("claim", box.device, "ANYCODE1").stderr
