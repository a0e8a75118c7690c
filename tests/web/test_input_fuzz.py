"""Every JSON body and query parameter of the page, fuzzed with Hypothesis against a real
gateway: malformed input gets a 4xx with a JSON error that says what is wrong, never a 500 or a
traceback, and changes nothing (no job in the job list, no tablet paired, no ticket added).
Job parameters are checked (types, finite numbers in range, no unknown fields) before any job
starts."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from firmware_py.gateway.job_params import CHECKS, check_params
from firmware_py.strict_json import StrictJsonError
from tests.web.conftest import pair, tablet

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"[" * 10000 + b"]" * 10000,  # deeply nested
            b'{"a":' * 3000 + b"1" + b"}" * 3000,
            b'{"wait": NaN}',
            b'{"wait": Infinity, "claim": "x"}',
            b'{"wait": "soon", "claim": "x"}',
            b'{"name": "a", "name": "b"}',
            b"\xff\xfe\x00{",
            b"x" * 70000,  # larger than a body may be
        ]
    ),
    values.map(lambda v: json.dumps(v).encode()),
)


def _state(page: Any) -> tuple[Any, ...]:
    return (
        sorted(page.gateway.runner.jobs),
        sorted(t.id for t in page.pairing.tablets()),
        page.gateway.tickets(),
        len(page.pairing._pending),
    )


async def _session(page: Any) -> tuple[aiohttp.ClientSession, str]:
    s = tablet()
    csrf = await pair(s, page.base, page.pairing, page.clock)
    return s, csrf


async def _german(s: aiohttp.ClientSession, base: str) -> dict[str, str]:
    """The German catalogue the tablet's page loads (firmware_py/web/i18n_routes.py)."""
    async with s.get(base + "/i18n/de.json") as r:
        return (await r.json())["messages"]


def _rendered(text: Any, messages: dict[str, str], missing: list[str]) -> str:
    """A text the box sent as ``{message, values}`` as the page's ``tr()`` shows it
    (firmware_py/web/static/i18n.js); a template the catalogue lacks is added to ``missing``."""
    if not isinstance(text, dict):
        return str(text)
    template = text["message"]
    if template not in messages:
        missing.append(template)
    values = {k: _rendered(v, messages, missing) for k, v in (text.get("values") or {}).items()}
    return messages.get(template, template).format_map(values)


def _check_refused(status: int, body: bytes) -> None:
    assert 400 <= status < 500, (status, body[:300])
    data = json.loads(body)
    assert isinstance(data.get("error"), str) and data.get("message"), data


def test_every_json_route_refuses_malformed_bodies_without_changing_anything(server) -> None:
    page = server
    s, csrf = page.loop.run_until_complete(_session(page))
    routes = ["/api/pair/{rid}/code", "/api/pair/{rid}/collect", "/api/jobs", "/api/tickets"]

    async def prepare() -> tuple[str, str]:
        async with s.post(page.base + "/api/pair", json={"name": "fuzz"}) as r:
            req = await r.json()
        return req["id"], req["claim"]

    rid, _ = page.loop.run_until_complete(prepare())
    before = _state(page)

    @SETTINGS
    @given(route=st.sampled_from(routes), body=raw_bodies)
    def check(route: str, body: bytes) -> None:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict) and route == "/api/jobs":
            kind, params = parsed.get("kind"), parsed.get("params") or {}
            if (
                isinstance(kind, str)
                and isinstance(params, dict)
                and set(parsed) <= {"kind", "params", "ecu"}
            ):
                try:
                    check_params(kind, params)
                except StrictJsonError:
                    pass
                else:
                    assume(kind not in CHECKS)  # a valid job would start: not this test's case

        async def go() -> tuple[int, bytes]:
            async with s.post(
                page.base + route.format(rid=rid),
                data=body,
                headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
            ) as r:
                return r.status, await r.read()

        status, answer = page.loop.run_until_complete(go())
        if route.endswith("/code") and status == 403:
            # a well-formed wrong code is refused as such (and counted), never a 500
            assert json.loads(answer)["error"] == "pairing_refused"
        else:
            _check_refused(status, answer)
        after = _state(page)
        assert after[:3] == before[:3]

    try:
        check()
    finally:
        page.loop.run_until_complete(s.close())


job_kinds = st.sampled_from(sorted(CHECKS))
bad_numbers = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.sampled_from([-1, 1e308, -1e308, 10**30, 0.0001, 601, [], {}]),
)


@st.composite
def bad_params(draw: Any) -> tuple[str, dict[str, Any]]:
    """A job kind and parameters with at least one field of the wrong type or out of range."""
    kind = draw(job_kinds)
    fields = {
        "read_live_data": ["interval", "duration", "values"],
        "read_fault_memory": ["status_mask", "details"],
        "read_did": ["dids"],
        "raw_uds": ["request"],
        "coding": ["action", "changes"],
        "service_reset": ["action", "capacity_ah", "item"],
        "programming": ["package", "packages", "resume"],
    }.get(kind, ["unknown"])
    params = {draw(st.sampled_from(fields + ["unknown_field"])): draw(bad_numbers | values)}
    return kind, params


def test_job_params_are_checked_before_any_job_starts(server) -> None:
    """... and every refusal is a template the tablet's German catalogue has."""
    page = server
    s, csrf = page.loop.run_until_complete(_session(page))
    german = page.loop.run_until_complete(_german(s, page.base))
    before = _state(page)

    @SETTINGS
    @given(case=bad_params())
    def check(case: tuple[str, dict[str, Any]]) -> None:
        kind, params = case
        try:
            check_params(kind, params)
        except StrictJsonError:
            pass
        else:
            assume(False)  # the drawn value happened to be valid

        async def go() -> tuple[int, bytes]:
            async with s.post(
                page.base + "/api/jobs",
                json={"kind": kind, "params": params},
                headers={"X-CSRF-Token": csrf},
            ) as r:
                return r.status, await r.read()

        status, answer = page.loop.run_until_complete(go())
        assert status == 400, (kind, params, answer[:200])
        refusal = json.loads(answer)
        assert refusal["error"] == "invalid_input"
        missing: list[str] = []
        _rendered(refusal["i18n"]["message"], german, missing)
        try:
            json.dumps(params, allow_nan=False)
        except ValueError:  # NaN / Infinity: the JSON parser's own refusal, English on purpose
            missing.clear()
        assert not missing, (kind, params, refusal)
        assert _state(page)[:3] == before[:3]

    try:
        check()
    finally:
        page.loop.run_until_complete(s.close())


def test_a_german_tablet_reads_a_refused_job_in_german(server) -> None:
    """A tablet whose page is German (the EN / DE switch's cookie, the browser's Accept-Language)
    starts jobs with invalid fields: the answer keeps the English message (logs, --json) and
    carries the templates, which the page's catalogue shows in German."""
    page = server
    s, csrf = page.loop.run_until_complete(_session(page))
    s.cookie_jar.update_cookies({"vci_lang": "de"})
    cases = [
        (
            {"kind": "read_did", "params": {"dids": "F190"}},
            "dids must be a list of at most 64 texts",
            "dids muss eine Liste von höchstens 64 Texten sein",
        ),
        (
            {"kind": "coding", "ecu": "BDC", "params": {"action": "wipe"}},
            "action must be one of read, set, restore",
            "action muss eines von read, set, restore sein",
        ),
    ]

    too_large = {"kind": "identify", "params": {"note": "x" * 70_000}}
    cases.append(
        (
            too_large,
            f"the body has {len(json.dumps(too_large))} bytes or more; at most 65536 are taken",
            f"der Anfrageinhalt hat {len(json.dumps(too_large))} Bytes oder mehr; höchstens 65536 "
            "werden angenommen",
        )
    )

    async def go() -> list[tuple[int, dict[str, Any]]]:
        answers = []
        for body, _english, _german_text in cases:
            async with s.post(
                page.base + "/api/jobs",
                json=body,
                headers={"X-CSRF-Token": csrf, "Accept-Language": "de-DE,de;q=0.9"},
            ) as r:
                answers.append((r.status, await r.json()))
        return answers

    try:
        german = page.loop.run_until_complete(_german(s, page.base))
        answers = page.loop.run_until_complete(go())
    finally:
        page.loop.run_until_complete(s.close())
    for (status, refusal), (_body, english, german_text) in zip(answers, cases, strict=True):
        assert status in (400, 413) and refusal["message"] == english, refusal
        missing: list[str] = []
        assert _rendered(refusal["i18n"]["message"], german, missing) == german_text, refusal
        assert not missing
    assert not page.gateway.runner.jobs


def test_a_programming_job_names_packages_of_the_store_only(server) -> None:
    page = server
    s, csrf = page.loop.run_until_complete(_session(page))
    before = _state(page)

    async def go() -> None:
        for package in ("/etc/shadow", "/dev/zero", "../../etc/shadow", "a/b.vcipkg", "x.zip", ""):
            async with s.post(
                page.base + "/api/jobs",
                json={"kind": "programming", "params": {"package": package}},
                headers={"X-CSRF-Token": csrf},
            ) as r:
                assert r.status == 400, package
                assert (await r.json())["error"] == "invalid_input"
        await s.close()

    page.loop.run_until_complete(go())
    assert _state(page)[:3] == before[:3]


def test_a_non_number_wait_is_a_clear_400(server) -> None:
    page = server

    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            async with s.post(page.base + "/api/pair", json={"name": "t"}) as r:
                req = await r.json()
            for wait in ("soon", None, [], True, -1, 1e9):
                async with s.post(
                    page.base + f"/api/pair/{req['id']}/collect",
                    json={"claim": req["claim"], "wait": wait},
                ) as r:
                    body = await r.json()
                    assert r.status == 400 and "wait" in body["message"], (wait, body)

    page.loop.run_until_complete(go())


def test_bad_bridge_parameters_are_a_400_like_every_job_s(server) -> None:
    """The bridge's parameters are checked where every job's are (job_params): a bad one is a
    400 invalid_input, not a 409 as if the vehicle were busy."""
    page = server
    s, csrf = page.loop.run_until_complete(_session(page))
    before = _state(page)

    async def go() -> None:
        for body in ({"client": "x" * 100}, {"timeout": 1e9}, {"timeout": True}, {"client": 5}):
            async with s.post(
                page.base + "/api/bridge/open", json=body, headers={"X-CSRF-Token": csrf}
            ) as r:
                answer = await r.json()
                assert (r.status, answer["error"]) == (400, "invalid_input"), (body, answer)

    try:
        page.loop.run_until_complete(go())
    finally:
        page.loop.run_until_complete(s.close())
    assert _state(page)[:3] == before[:3]
