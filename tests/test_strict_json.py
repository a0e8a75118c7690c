"""Strict JSON: what Python's json module lets through and the box must not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_py import strict_json
from firmware_py.strict_json import StrictJsonError


@pytest.mark.parametrize(
    "raw",
    [
        b'{"time": NaN}',
        b'{"time": Infinity}',
        b'{"time": -Infinity}',
        b'{"a": 1, "a": 2}',
        b"[" * 40 + b"]" * 40,
        b'{"a":' * 33 + b"1" + b"}" * 33,
        b"\xff\xfe{}",
        b"",
        b"{",
        b'{"a": 1} trailing',
    ],
)
def test_refused(raw: bytes) -> None:
    with pytest.raises(StrictJsonError):
        strict_json.loads(raw)


def test_deep_nesting_is_refused_before_parsing_not_by_recursion_error() -> None:
    with pytest.raises(StrictJsonError, match="nested deeper"):
        strict_json.loads("[" * 100_000 + "]" * 100_000, max_bytes=1_000_000)


def test_brackets_inside_strings_do_not_count() -> None:
    assert strict_json.loads('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == {"a": "[" * 38}


def test_size_bound() -> None:
    with pytest.raises(StrictJsonError, match="more than"):
        strict_json.loads(b" " * 100 + b"{}", max_bytes=50)


def test_fields() -> None:
    body = {"wait": "soon", "n": 5.5, "ok": 3, "flag": True}
    with pytest.raises(StrictJsonError, match="wait is not a number"):
        strict_json.number(body, "wait", low=0, high=60)
    with pytest.raises(StrictJsonError, match="between"):
        strict_json.number(body, "n", low=0, high=5)
    with pytest.raises(StrictJsonError, match="whole"):
        strict_json.number(body, "n", low=0, high=10, integer=True)
    with pytest.raises(StrictJsonError, match="not a number"):
        strict_json.number(body, "flag", low=0, high=10)
    assert strict_json.number(body, "ok", low=0, high=10, integer=True) == 3
    assert strict_json.number(body, "absent", low=0, high=10, default=2) == 2.0
    with pytest.raises(StrictJsonError):
        strict_json.number({"x": float("nan")}, "x", low=0, high=1)
    with pytest.raises(StrictJsonError):
        strict_json.dumps({"x": float("inf")})


@given(st.binary(max_size=300))
def test_any_bytes_give_a_value_or_a_strict_error(raw: bytes) -> None:
    try:
        strict_json.loads(raw)
    except StrictJsonError:
        pass


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_round_trip(value: object) -> None:
    assert strict_json.loads(strict_json.dumps(value)) == value
