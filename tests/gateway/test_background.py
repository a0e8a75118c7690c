"""The gateway's background work does not die silently: a failing task is logged and started
again; the traces of the vehicle link stay within their bound (oldest deleted first)."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

from firmware_py.gateway.job_handlers import HANDLERS
from firmware_py.gateway.service import Gateway
from firmware_py.gateway.store import Store
from firmware_py.gateway.supervise import supervised


def test_a_failing_background_task_is_logged_and_started_again(caplog) -> None:
    runs: list[int] = []
    done = asyncio.Event

    async def main() -> None:
        finished = done()

        async def flaky() -> None:
            runs.append(len(runs))
            if len(runs) < 3:
                raise RuntimeError(f"failure {len(runs)}")
            finished.set()
            await asyncio.Event().wait()  # then runs until cancelled

        task = supervised(flaky, "flaky", first_pause=0.01)
        await asyncio.wait_for(finished.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert runs == [0, 1, 2]
    failures = [r for r in caplog.records if "background task 'flaky' failed" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info is not None


def test_traces_are_kept_within_their_bound_oldest_first(tmp_path) -> None:
    gateway = Gateway(
        Store(tmp_path), open_vehicle=lambda: None, handlers=HANDLERS, traces_max_bytes=3000
    )
    gateway.trace_dir.mkdir()
    for n in range(5):
        path = gateway.trace_dir / f"t{n}.pcap"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1000 + n, 1000 + n))
    assert gateway.prune_traces() == 2
    assert sorted(p.name for p in gateway.trace_dir.iterdir()) == ["t2.pcap", "t3.pcap", "t4.pcap"]
    big = gateway.trace_dir / "t9.pcap"
    big.write_bytes(b"x" * 10_000)  # the newest is kept whatever its size
    os.utime(big, (2000, 2000))
    gateway.prune_traces()
    assert sorted(p.name for p in gateway.trace_dir.iterdir()) == ["t9.pcap"]
