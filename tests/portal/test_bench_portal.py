"""bench/bench_portal.py runs (tiny: 3 technicians for 1 s on SQLite) so that it cannot rot; its
figures are docs/performance.md's."""

from __future__ import annotations

import re

import pytest

from bench.bench_portal import main


def test_the_portal_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--users", "3", "--workshops", "2", "--seconds", "1", "--databases", "sqlite"])
    out = capsys.readouterr().out
    assert re.search(r"SQLite: \d+ requests in .* tickets bought .* errors 0", out), out
    for step in ("dashboard", "buy page", "buy", "purchase page", "invoice PDF"):
        assert re.search(rf"  {step} +median +[\d.]+ ms +p99 +[\d.]+ ms", out), (step, out)
