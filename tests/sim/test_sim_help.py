"""``vci sim --help`` says what the simulator does: its faces, its ready line, every fault."""

from __future__ import annotations

import argparse
import re

from firmware_py.cli import build_parser
from firmware_py.sim import faults
from firmware_py.sim.faults import parse_fault


def sim_help() -> str:
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return str(subs.choices["sim"].format_help())


def test_help_names_every_fault_kind_the_parser_takes() -> None:
    # the examples in sim/faults.py's docstring: each parses, and its kind is in the help
    examples = re.findall(r"^    (\S+)\s{2,}", faults.__doc__ or "", re.MULTILINE)
    assert len(examples) >= 13
    text = sim_help()
    for spec in examples:
        parse_fault(spec)
        kind = re.split(r"[:=]", spec)[0]
        assert re.search(rf"(^|\s){re.escape(kind)}[:=\s]", text, re.MULTILINE), kind


def test_help_names_both_enet_faces_and_the_whole_ready_line() -> None:
    text = " ".join(sim_help().split())
    assert "HSFZ" in text and "DoIP" in text
    # the line run_sim prints: doip, hsfz, can, control, vin
    assert re.search(r"vci-sim ready doip=\S+ hsfz=\S+ can=\S+ control=\S+ vin=\S+", text)
