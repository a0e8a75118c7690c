"""The remote portal sees that a bridge session is open, and what it did: the session log's
records reach the portal through a real mosquitto (TLS, client certificates, ACL)."""

from __future__ import annotations

import time

import pytest

from tests.cloud.conftest import BOX, HAVE_MOSQUITTO, USER, broker, gateway_env, wait_online

if not HAVE_MOSQUITTO:
    pytest.skip("mosquitto is not installed (scripts/test installs it)", allow_module_level=True)

__all__ = ["broker"]  # the fixture, imported for this module


def test_the_portal_sees_the_bridge_open_and_closed(bridge_box, box, broker, tmp_path) -> None:
    from portal.records import RecordStore
    from portal.remote import RemoteSession

    env = gateway_env(box, broker)
    cloud = {k: v for k, v in env.items() if k.startswith("VCI_CLOUD_")}
    gw = bridge_box(env_extra=cloud)
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    try:
        wait_online(session, BOX)
        records = RecordStore(tmp_path / "portal.sqlite")
        session.keep_records(records)
        gw.open("127.0.0.1")

        def events() -> list[str]:
            return [
                r["body"].get("event")
                for r in records.latest()
                if r["box"] == BOX and r["kind"] == "session_log"
            ]

        deadline = time.monotonic() + 20
        while "bridge.opened" not in events():
            assert time.monotonic() < deadline, "the portal did not hear of the open bridge"
            time.sleep(0.1)
        opened = next(r for r in records.latest() if r["body"].get("event") == "bridge.opened")
        assert opened["body"]["client"] == "127.0.0.1" and opened["body"]["vin"]
        gw.vci("bridge", "close")
        while "bridge.closed" not in events():
            assert time.monotonic() < deadline + 10, "the portal did not hear of the close"
            time.sleep(0.1)
    finally:
        session.close()
