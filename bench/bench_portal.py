"""The portal's pages under concurrent technicians, on SQLite and on PostgreSQL, in one run.

For each database: a fresh database (SQLite: a file; PostgreSQL: a throwaway cluster of Debian's
package on a Unix socket, portal/db/throwaway.py, the one the tests use), WORKSHOPS workshops with
USERS technicians in all and credit for thousands of tickets, one ``vci-portal serve`` process
(behind a "proxy" at 127.0.0.1 that names each technician's own address in X-Forwarded-For, so
the per-address login limit applies per technician as in the field). Every technician logs in
(not measured), then loops for SECONDS: the dashboard (credit, purchases, statement), the buy
page, buying a ticket (POST, answered with a redirect to the purchase), the purchase's page, the
invoice PDF. Each request's latency is taken from sending it to its body read; printed per step
as median and p99, with the requests per second of the whole run. Client and server share this
machine's cores.

Run: PYTHONPATH=. .venv/bin/python bench/bench_portal.py   (--users 50 --seconds 20; needs
Debian's postgresql package for the PostgreSQL half, or --databases sqlite)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp
from argon2 import PasswordHasher

from portal import accounts, boxes, keys
from portal.accounts import Actor, WorkshopData
from portal.credit import MAX_TOP_UP_CENTS, BankTransfer
from portal.db.engine import open_database, upgrade
from portal.db.throwaway import running_cluster

SELLER = """[seller]
name = "VCI Portal GmbH"
street = "Hauptstr. 1"
postcode = "80331"
city = "Muenchen"
country = "DE"
vat_id = "DE999999999"
"""
PASSWORD = "bench password 1234"
STEPS = ("dashboard", "buy page", "buy", "purchase page", "invoice PDF")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
INVOICE = re.compile(r'href="(/invoices/\d+\.pdf)"')
SETUP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
"""the users are made with a cheap hash (setting up is not measured); the portal renews it to
its own parameters at each user's first login, as it does for any outdated hash"""


def prepare(db_url: str, workshops: int, users: int) -> list[str]:
    """The schema, ``workshops`` workshops with ``users`` technicians in all (owners included)
    and plenty of credit each; the technicians' logins."""
    upgrade(db_url)
    engine, factory = open_database(db_url, migrate=False)
    logins: list[str] = []
    try:
        with factory() as session, session.begin():
            ops = Actor.of(
                accounts.add_operator(
                    session,
                    login="ops@bench.example",
                    name="Ops",
                    password=PASSWORD,
                    hasher=SETUP_HASHER,
                )  # fmt: skip
            )
            for w in range(workshops):
                data = WorkshopData(f"Werkstatt {w}", "Ring 1", "10115", "Berlin", "DE",
                                    f"DE{200000000 + w}")  # fmt: skip
                owner = accounts.sign_up(session, data, owner_login=f"t0.w{w}@bench.example",
                                         owner_name="Owner", password=PASSWORD,
                                         hasher=SETUP_HASHER)  # fmt: skip
                session.flush()
                owner_actor, workshop_id = Actor.of(owner), owner.workshop_id or 0
                BankTransfer().book(session, ops, workshop_id, MAX_TOP_UP_CENTS, f"BENCH-{w}")
                boxes.record_claim(session, owner_actor, workshop_id, bench_box(owner.login))
                logins.append(owner.login)
                for t in range(1, users // workshops + (w < users % workshops)):
                    user = accounts.add_user(
                        session, owner_actor, workshop_id, login=f"t{t}.w{w}@bench.example",
                        name=f"Tech {t}", password=PASSWORD, hasher=SETUP_HASHER,
                    )  # fmt: skip
                    logins.append(user.login)
    finally:
        engine.dispose()
    return logins


@contextmanager
def serving(root: Path, db_url: str) -> Iterator[str]:
    """``vci-portal serve`` on 127.0.0.1 (a free port) for ``db_url``; its base URL."""
    root.mkdir(parents=True)
    keys.generate(root / "keys", "bench")
    (root / "portal.toml").write_text(SELLER)
    log = (root / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "serve", "--port", "0", "--db", db_url,
         "--key-dir", str(root / "keys"), "--config", str(root / "portal.toml"),
         "--trusted-proxy", "127.0.0.1"],
        env={**os.environ, "VCI_PORTAL_STATE_DIR": str(root)}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("portal on "):
            process.wait(timeout=20)
            raise RuntimeError(
                f"vci-portal serve did not start: {(root / 'serve.log').read_text()}"
            )
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


class Run:
    """Latencies per step and the unexpected answers of one database's run."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.seconds = 0.0

    async def timed(
        self, step: str, http: aiohttp.ClientSession, method: str, path: str, expect: int,
        **kw: object,
    ) -> tuple[aiohttp.ClientResponse, bytes] | None:  # fmt: skip
        started = time.perf_counter()
        async with http.request(method, path, allow_redirects=False, **kw) as response:  # type: ignore[arg-type]
            body = await response.read()
        self.latency[step].append(time.perf_counter() - started)
        if response.status != expect:
            self.errors[f"{step}: HTTP {response.status}"] += 1
            return None
        return response, body


def bench_box(login: str) -> str:
    """The box of the workshop of ``login`` (t<n>.w<w>@bench.example), claimed at set-up:
    tickets are sold only for a workshop's own boxes."""
    return f"pi-bench-{int(login.split('.w', 1)[1].split('@', 1)[0]):04d}"


async def technician(
    base: str, login: str, n: int, run: Run, ready: asyncio.Barrier, until: list[float]
) -> None:
    address = f"10.{n // 250}.{n % 250}.1"  # as the trusted proxy names the technician
    async with aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True),
        headers={"X-Forwarded-For": address},
    ) as http:  # fmt: skip
        async with http.get("/login") as page:
            token = CSRF.search(await page.text())
        assert token, "no login form"
        form = {"login": login, "password": PASSWORD, "csrf": token[1]}
        async with http.post("/login", data=form, allow_redirects=False) as answer:
            assert answer.status == 303, f"{login} could not log in: HTTP {answer.status}"
        await ready.wait()
        device = bench_box(login)
        while time.perf_counter() < until[0]:
            await run.timed("dashboard", http, "GET", "/dashboard", 200)
            page = await run.timed("buy page", http, "GET", "/buy", 200)
            if page is None:
                continue
            token = CSRF.search(page[1].decode())
            assert token, "no form on /buy"
            order = {"tariff": "basic-9h", "device": device, "vin": "", "start": "",
                     "csrf": token[1]}  # fmt: skip
            bought = await run.timed("buy", http, "POST", "/buy", 303, data=order)
            if bought is None:
                continue
            shown = await run.timed(
                "purchase page", http, "GET", bought[0].headers["Location"], 200
            )
            link = INVOICE.search(shown[1].decode()) if shown else None
            if link:
                await run.timed("invoice PDF", http, "GET", link[1], 200)


async def load(base: str, logins: list[str], seconds: float) -> Run:
    run = Run()
    until = [float("inf")]
    ready = asyncio.Barrier(len(logins) + 1)
    tasks = [
        asyncio.create_task(technician(base, login, n, run, ready, until))
        for n, login in enumerate(logins)
    ]
    await asyncio.wait_for(ready.wait(), 120)  # everybody logged in
    started = time.perf_counter()
    until[0] = started + seconds
    await asyncio.gather(*tasks)
    run.seconds = time.perf_counter() - started
    return run


def p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]


def report(name: str, run: Run, users: int, workshops: int) -> None:
    total = sum(len(v) for v in run.latency.values())
    bought = len(run.latency["buy"])
    print(f"{name}: {total} requests in {run.seconds:.1f} s ({total / run.seconds:.0f}/s), "
          f"{bought} tickets bought ({bought // max(1, workshops)} per workshop by the end), "
          f"errors {sum(run.errors.values())}")  # fmt: skip
    for step in STEPS:
        values = run.latency.get(step, [])
        if values:
            print(f"  {step:14s} median {statistics.median(values) * 1000:7.1f} ms   "
                  f"p99 {p99(values) * 1000:7.1f} ms   ({len(values)})")  # fmt: skip
    for error, count in run.errors.most_common():
        print(f"  unexpected: {error} x{count}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=50, help="technicians at once (default 50)")
    parser.add_argument("--workshops", type=int, default=5, help="they work for (default 5)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per database (default 20)")
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql")  # fmt: skip
    args = parser.parse_args(argv)
    print(f"Portal pages, {args.users} technicians of {args.workshops} workshops at once, "
          f"{args.seconds:.0f} s per database, one vci-portal serve process, loopback")  # fmt: skip
    for name in args.databases.split(","):
        with ExitStack() as stack:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vci-bench-")))
            if name == "sqlite":
                db_url = f"sqlite:///{root / 'portal.sqlite3'}"
            elif name == "postgresql":
                db_url = stack.enter_context(running_cluster()).new_database("portal_bench")
            else:
                parser.error(f"unknown database {name!r}")
            logins = prepare(db_url, args.workshops, args.users)
            base = stack.enter_context(serving(root / "portal", db_url))
            run = asyncio.run(load(base, logins, args.seconds))
            report({"sqlite": "SQLite", "postgresql": "PostgreSQL"}[name], run, args.users,
                   args.workshops)  # fmt: skip


if __name__ == "__main__":
    main()
