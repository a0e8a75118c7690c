"""Enrolment and claiming (docs/claiming.md) against the reference portal's enrolment endpoint
(``vci-portal enrol serve``, real HTTPS on loopback, real SQLite) and a real mosquitto with the
portal's revocation list: a claimed box gets its certificate and links up without a restart, a
wrong label code or a second claim is refused, someone who knows only the device id can neither
claim the box nor slip in a key of their own, and a revoked box no longer gets in."""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from firmware_py.identity import enrol_proof, label_key
from portal.remote import RemoteSession
from tests.cloud.conftest import (
    BOX,
    HAVE_MOSQUITTO,
    USER,
    EnrolPortal,
    enrolling_env,
    tls_handshake,
    wait_online,
)
from tests.conftest import start_gateway_process, vci

if not HAVE_MOSQUITTO:
    pytest.skip("mosquitto is not installed (scripts/test installs it)", allow_module_level=True)


def _firstboot(env: dict[str, str]) -> Path:
    """``vci firstboot`` for the box; returns its state directory."""
    proc = vci("firstboot", env=env)
    assert proc.returncode == 0, proc.stderr
    from firmware_py.config import load_config

    return load_config(env=env).storage.state_dir


def _code(state: Path) -> str:
    return (state / "label-code").read_text().strip()


def _post(enrol: EnrolPortal, body: bytes) -> tuple[int, dict[str, Any]]:
    """One request to the enrolment endpoint, as anyone on the network could send it."""
    ctx = ssl.create_default_context(cafile=str(enrol.pki / "ca.pem"))
    request = urllib.request.Request(
        enrol.url, data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _stranger_request(device: str, cn: str, code: str) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    der = csr.public_bytes(serialization.Encoding.DER)
    body = {
        "device": device,
        "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
        "proof": enrol_proof(label_key(device, code), device, der),
    }
    return json.dumps(body).encode(), key


def test_a_claimed_box_gets_its_certificate_and_links_up_without_a_restart(
    box: Any, broker: dict[str, Any], enrol_portal: EnrolPortal
) -> None:
    env = enrolling_env(box, broker, enrol_portal)
    state = _firstboot(env)
    key_before = (state / "identity" / "box.key").read_bytes()
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    gateway = start_gateway_process([], env)
    try:
        enrol_portal.wait_waiting(BOX)
        assert not (state / "identity" / "box.pem").exists()
        assert session.boxes_online(0.3).get(BOX) != "online"

        claim = enrol_portal.box("claim", BOX, _code(state).lower())  # case does not matter
        assert claim.returncode == 0, claim.stderr
        wait_online(session, BOX)  # the same gateway process: no restart

        cert = x509.load_pem_x509_certificate((state / "identity" / "box.pem").read_bytes())
        key = serialization.load_pem_private_key(key_before, password=None)
        assert cert.public_key() == key.public_key()
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == BOX
        assert (state / "identity" / "box.key").read_bytes() == key_before

        again = enrol_portal.box("claim", BOX, _code(state))
        assert again.returncode == 2 and "already claimed" in again.stderr
        status = vci("enrol", "status", env=env)
        assert status.returncode == 0 and json.loads(status.stdout)["enrolled"] is True
    finally:
        session.close()
        output = gateway.stop()
    # neither the key nor the label code (it claims the box) goes to the journal
    assert "PRIVATE KEY" not in output and _code(state) not in output


def test_a_wrong_label_code_is_refused_and_the_box_stays_unenrolled(
    box: Any, broker: dict[str, Any], enrol_portal: EnrolPortal
) -> None:
    env = enrolling_env(box, broker, enrol_portal)
    state = _firstboot(env)
    first = vci("enrol", "run", env=env)
    assert first.returncode == 3 and first.stdout.startswith("pending"), first.stderr
    wrong = "".join("A" if c != "A" else "C" for c in _code(state))
    refused = enrol_portal.box("claim", BOX, wrong)
    assert refused.returncode == 2 and "label code does not match" in refused.stderr
    assert vci("enrol", "run", env=env).stdout.startswith("pending")
    assert not (state / "identity" / "box.pem").exists()
    for _ in range(4):  # five wrong codes in all: the box's claims are locked for a while
        assert enrol_portal.box("claim", BOX, wrong).returncode == 2
    locked = enrol_portal.box("claim", BOX, _code(state))
    assert locked.returncode == 2 and "too many wrong label codes" in locked.stderr
    assert not (state / "identity" / "box.pem").exists()


def test_who_knows_only_the_device_id_can_neither_claim_nor_slip_in_a_key(
    box: Any, broker: dict[str, Any], enrol_portal: EnrolPortal
) -> None:
    env = enrolling_env(box, broker, enrol_portal)
    # the stranger asks first, for the box's device id, with a key of their own and a guess
    body, _ = _stranger_request(BOX, BOX, "GUESSED1")
    assert _post(enrol_portal, body) == (200, {"state": "pending"})
    # a CSR in another name than the device id is refused outright
    status, answer = _post(enrol_portal, _stranger_request(BOX, "box-b", "GUESSED1")[0])
    assert status == 400 and "common name is not the device id" in answer["message"]

    state = _firstboot(env)
    assert vci("enrol", "run", env=env).returncode == 3
    assert enrol_portal.box("claim", BOX, _code(state)).returncode == 0
    # the CA signed the box's own key, not the stranger's ...
    done = vci("enrol", "run", env=env)
    assert done.returncode == 0 and done.stdout.startswith("enrolled"), done.stdout + done.stderr
    # ... and the stranger's request gets no certificate, now or later
    status, answer = _post(enrol_portal, body)
    assert status == 409 and "claimed with another key" in answer["message"]
    assert "certificate" not in answer


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{" + b" " * 9000 + b"}", 413, "larger than"),
        (b'{"device": NaN}', 400, "not a JSON number"),
        (b'{"device": "a", "device": "b"}', 400, "appears twice"),
        (b'{"device": "box/+/#", "csr": "", "proof": ""}', 400, "not a device id"),
        (b'{"device": "box-test-0001", "csr": "x", "proof": "00"}', 400, "proof"),
    ],
)
def test_the_enrolment_endpoint_refuses_what_is_malformed(
    enrol_portal: EnrolPortal, body: bytes, status: int, words: str
) -> None:
    got, answer = _post(enrol_portal, body)
    assert got == status and words in answer["message"], answer


def test_a_revoked_box_can_no_longer_connect(
    box: Any, broker: dict[str, Any], enrol_portal: EnrolPortal, start_bridge: Any
) -> None:
    import asyncio

    import aiohttp

    env = enrolling_env(box, broker, enrol_portal)
    state = _firstboot(env)
    assert vci("enrol", "run", env=env).returncode == 3
    assert enrol_portal.box("claim", BOX, _code(state)).returncode == 0
    assert vci("enrol", "run", env=env).returncode == 0
    cert, key = state / "identity" / "box.pem", state / "identity" / "box.key"
    _, ws_url = start_bridge()

    async def bridge_status() -> int:
        ctx = ssl.create_default_context(cafile=str(broker["pki"] / "ca.pem"))
        ctx.load_cert_chain(str(cert), str(key))
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(ws_url, ssl=ctx):
                    return 101
            except aiohttp.WSServerHandshakeError as err:
                return err.status

    assert tls_handshake(broker["port"], broker["pki"], cert, key) == "ok"
    assert asyncio.run(bridge_status()) == 101

    pid = str(broker["proc"].pid)
    revoked = enrol_portal.box("revoke", BOX, "--broker-pid", pid)
    assert revoked.returncode == 0, revoked.stderr
    deadline = time.monotonic() + 10  # mosquitto reads the list on SIGHUP, between two loops
    while (verdict := tls_handshake(broker["port"], broker["pki"], cert, key)) == "ok":
        assert time.monotonic() < deadline, "the broker still takes the revoked box"
        time.sleep(0.1)
    assert "revoked" in verdict
    assert asyncio.run(bridge_status()) == 403
    # the box's own log says why it cannot link
    gateway = start_gateway_process([], env)
    try:
        line = gateway.output.wait_for("cannot link", 30)
    finally:
        gateway.stop()
    assert "certificate revoked" in line and "operator" in line, line
    # nor can it be claimed again, and its enrolment requests say why
    assert "already revoked" in enrol_portal.box("claim", BOX, _code(state)).stderr
    again = vci("enrol", "run", env=env)
    assert again.returncode != 0 and "revoked" in again.stderr
    assert os.stat(key).st_mode & 0o777 == 0o600


def _post_chunked(enrol: EnrolPortal, chunks: list[bytes]) -> tuple[int, dict[str, Any]]:
    """A request whose body comes in HTTP chunks (no Content-Length), each flushed on its own."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(enrol.url)
    ctx = ssl.create_default_context(cafile=str(enrol.pki / "ca.pem"))
    conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=ctx, timeout=10)
    try:
        conn.request(
            "POST",
            url.path,
            body=iter(chunks),
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_a_body_in_pieces_is_read_whole_and_bounded_without_a_length(
    enrol_portal: EnrolPortal,
) -> None:
    body, _ = _stranger_request(BOX, BOX, "GUESSED1")
    half = len(body) // 2
    assert _post_chunked(enrol_portal, [body[:half], body[half:]]) == (200, {"state": "pending"})
    status, answer = _post_chunked(enrol_portal, [b"{", b" " * 9000, b"}"])
    assert status == 413 and "larger than" in answer["message"]


def test_a_replayed_csr_with_a_wrong_proof_changes_nothing_of_the_box_request(
    tmp_path: Path,
) -> None:
    """The portal's records (real SQLite, no server): someone who got hold of the box's CSR and
    sends it with a wrong proof, and floods the device id with requests, does not stop the
    workshop's claim once the box has asked again."""
    from firmware_py.identity import make_identity
    from portal import pki
    from portal.enrolment import REQUESTS_PER_BOX, Enrolment

    pki.make_ca(tmp_path / "pki")
    enrolment = Enrolment(tmp_path / "boxes.sqlite", tmp_path / "pki")
    csr = make_identity(tmp_path / "state", BOX)
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    der = csr.public_bytes(serialization.Encoding.DER)
    proof = enrol_proof(label_key(BOX, "PDKXRTNQ"), BOX, der)
    assert enrolment.request(BOX, pem, proof, now=1000.0) == {"state": "pending"}
    wrong = enrol_proof(label_key(BOX, "GUESSED1"), BOX, der)
    assert enrolment.request(BOX, pem, wrong, now=1001.0) == {"state": "pending"}
    for n in range(REQUESTS_PER_BOX * 2):  # pushes the box's request out ...
        body = json.loads(_stranger_request(BOX, BOX, "GUESSED1")[0])
        enrolment.request(BOX, body["csr"], body["proof"], now=1002.0 + n)
    enrolment.request(BOX, pem, proof, now=1100.0)  # ... until the box asks again
    enrolment.request(BOX, pem, wrong, now=1100.5)  # the replay just before the claim
    cert = enrolment.claim(BOX, "pdkx-rtnq", now=1101.0)
    assert cert.public_key() == csr.public_key()
    issued = enrolment.request(BOX, pem, wrong, now=1102.0)
    assert issued["state"] == "issued"  # the certificate is public; the key stays on the box
    enrolment.close()


def test_requests_per_client_address_are_limited() -> None:
    from portal.enrol_server import RateLimit

    now = [0.0]
    limit = RateLimit(per_minute=60, burst=2, clock=lambda: now[0])
    assert [limit.allow("10.0.0.9") for _ in range(3)] == [True, True, False]
    assert limit.allow("10.0.0.10")  # another address has its own bucket
    now[0] += 1.0  # one request a second comes back
    assert limit.allow("10.0.0.9") and not limit.allow("10.0.0.9")
