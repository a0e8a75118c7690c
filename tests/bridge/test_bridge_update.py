"""``vci update install`` asks the running gateway first and refuses while a job runs: an open
ENET bridge is a job holding the car (docs/update.md). Nothing reaches RAUC then."""

from __future__ import annotations

from pathlib import Path


def test_update_is_refused_while_a_job_runs_and_asked_again_after(bridge_box, tmp_path) -> None:
    gw = bridge_box()
    bundle = tmp_path / "vci-gateway-0.2.0.raucb"
    bundle.write_bytes(b"not read: the gateway is asked before RAUC")
    gw.open()
    refused = gw.vci("update", "install", str(bundle))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "a job is queued or running on the box: enet_bridge" in refused.stderr, refused.stderr
    assert "nothing was installed" in refused.stderr
    assert "installing" not in refused.stdout
    closed = gw.vci("bridge", "close")
    assert closed.returncode == 0, closed.stderr
    gw.wait_closed()
    # no job now: the command goes on to RAUC (absent on a development machine, or refusing
    # this file): either way not the job refusal
    after = gw.vci("update", "install", str(bundle))
    assert "a job is queued or running" not in after.stderr, after.stderr
    assert Path(bundle).exists()
