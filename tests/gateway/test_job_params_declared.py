"""The job kinds' parameters are declared once (firmware_py/gateway/job_params.py) and the box's
check is derived from the declaration: it refuses exactly what the hand-written checks refused
(tests/gateway/job_params_oracle.py, the module as it was), and the declaration is JSON a form
is built from."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_py.gateway import job_params
from firmware_py.gateway.job_params import JOB_KINDS, check_params, describe
from firmware_py.gateway.tariffs import JobKind
from firmware_py.strict_json import StrictJsonError
from tests.gateway import job_params_oracle as oracle

scalars = (
    st.none() | st.booleans() | st.integers(-300, 10**6) | st.floats(allow_nan=True)
    | st.sampled_from(["", " ", "read", "set", "restore", "reset", "record", "22 F1 90", "zz",
                       "F190", "DME:4001", "a.vcipkg", "../x.vcipkg", "x" * 70, "engine_oil"])
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["F190", "a", "x" * 70]), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def cases(draw: Any) -> tuple[str, dict[str, Any], bool]:
    kind = draw(st.sampled_from(sorted(oracle.CHECKS)))
    names = list(JOB_KINDS[kind].names) + ["unknown_field"]
    params = draw(st.dictionaries(st.sampled_from(names), values, max_size=3))
    return kind, params, draw(st.booleans())


def _refusal(check: Any, kind: str, params: dict[str, Any], local: bool) -> str | None:
    try:
        check(kind, params, local=local)
    except StrictJsonError as err:
        return str(err)
    return None


@settings(max_examples=3000, deadline=None)
@given(case=cases())
def test_the_derived_check_refuses_what_the_hand_written_one_refused(
    case: tuple[str, dict[str, Any], bool],
) -> None:
    kind, params, local = case
    before = _refusal(oracle.check_params, kind, params, local)
    now = _refusal(check_params, kind, params, local)
    if kind == "programming" and "packages" in params and params.get("packages") is not None:
        # the one intended difference: a malformed "package" beside "packages" went unchecked
        assert (before is None) >= (now is None)
        return
    assert (now is None) == (before is None), (kind, params, local, before, now)
    if now is not None and before is not None and len(params) <= 1 and kind != "map_update":
        # one field at fault: the same field named (with several, either refusal is right; a
        # map update needs manifest and activation together, so one given is two at fault)
        assert now.split()[0] == before.split()[0], (kind, params, before, now)


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("read_fault_memory", {"status_mask": 256}, "status_mask must be between 0 and 255"),
        ("read_fault_memory", {"details": None}, "details must be true or false"),
        ("read_live_data", {"interval": 0.1}, "interval must be between 0.2 and 60"),
        ("read_live_data", {"values": ["DME 4001"]}, "which is not a name like F190"),
        ("raw_uds", {"request": "2"}, "request must be hex bytes"),
        ("raw_uds", {}, "request is missing"),
        ("coding", {"action": "write"}, "action must be one of read, set, restore"),
        ("coding", {"changes": {"a": True}}, "must be a name or a whole number"),
        ("service_reset", {"capacity_ah": 1001}, "capacity_ah must be between 0 and 1000"),
        ("help_desk_request", {"question": " ", "contact": "x"}, "question: say what"),
        ("programming", {}, "name the flash package(s)"),
        ("programming", {"packages": ["../etc/x.vcipkg"]}, "is not a package of this box"),
        ("identify", {"x": 1}, "unknown parameter 'x'; this job takes none"),
    ],
)
def test_the_box_still_refuses_the_same_bad_params(kind: str, params: Any, message: str) -> None:
    with pytest.raises(StrictJsonError) as refused:
        check_params(kind, params)
    assert message in str(refused.value)


def test_every_job_kind_is_declared_and_the_declaration_is_json_for_forms() -> None:
    assert set(JOB_KINDS) <= {k.value for k in JobKind}
    assert set(JOB_KINDS) == set(job_params.CHECKS)
    described = json.loads(json.dumps(describe()))
    faults = next(k for k in described if k["kind"] == "read_fault_memory")
    mask = next(f for f in faults["fields"] if f["name"] == "status_mask")
    assert mask == {"name": "status_mask", "type": "int", "label": "Status mask",
                    "help": mask["help"], "low": 0, "high": 255, "default": 0xFF,
                    "max_len": 256}  # fmt: skip
    coding = next(k for k in described if k["kind"] == "coding")
    assert coding["needs_ecu"] and coding["fields"][0]["choices"] == ["read", "set", "restore"]
    help_desk = next(k for k in described if k["kind"] == "help_desk_request")
    assert [f["name"] for f in help_desk["fields"]] == ["question", "contact"]  # traces: CLI only
