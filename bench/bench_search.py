"""Repair information search latency on SQLite and on PostgreSQL, printed in one run: the
sample content set with ``--documents`` generated documents (default 100,000: half parts, a
quarter each instructions and bulletins) is written once, imported into an SQLite file and into
a throwaway PostgreSQL cluster (portal/db/throwaway.py, the tests' own), and the same queries
run against both through portal/content/search.py, as the search page runs them: for a vehicle
(type code) or for all, the best 20 with snippets.

Per database: the import time, then median and p99 per query over ``--rounds`` rounds of the
query mix (single words, two and three words, a DTC in its display form, a part number, words
that match nothing).

Run: PYTHONPATH=. python bench/bench_search.py [--documents 100000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from portal.content import format, sample, search, store
from portal.db.engine import open_database
from portal.db.throwaway import running_cluster

QUERIES = [
    ("boost", "JA71"), ("sensor", None), ("wheel speed sensor", "8E9C"),
    ("coolant pump thermostat", None), ("P12A1-00", "JA71"), ("brake caliper", "JA71"),
    ("50000042", None), ("occupancy mat connector", "JA71"), ("xylophone", None),
    ("battery terminal current consumption", "8E9C"),
]  # fmt: skip


def measure(url: str, content: format.ContentSet, rounds: int) -> tuple[float, float, float, int]:
    """Import seconds, median and p99 query seconds, and the hits of the first query."""
    engine, factory = open_database(url, migrate=True)
    try:
        started = time.perf_counter()
        store.load(factory, content)
        imported = time.perf_counter() - started
        times = []
        mix = QUERIES * rounds
        random.Random(16).shuffle(mix)
        with factory() as session:
            for query, code in QUERIES:  # warm the caches once
                search.search(session, query, code)
            hits = len(search.search(session, *QUERIES[0]))
            for query, code in mix:
                started = time.perf_counter()
                search.search(session, query, code)
                times.append(time.perf_counter() - started)
        times.sort()
        return imported, statistics.median(times), times[int(len(times) * 0.99) - 1], hits
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vci-bench-search-") as tmp:
        started = time.perf_counter()
        sample.write(Path(tmp) / "content", args.documents)
        content = format.read(Path(tmp) / "content")
        total = (len(content.instructions) + len(content.wiring) + len(content.bulletins)
                 + len(content.parts))  # fmt: skip
        print(f"content: {total} searchable documents, generated and validated in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        results = {
            "SQLite (FTS5)": measure(f"sqlite:///{tmp}/portal.sqlite3", content, args.rounds)
        }
        with running_cluster() as cluster:
            results["PostgreSQL (GIN)"] = measure(cluster.new_database(), content, args.rounds)
    print(f"{len(QUERIES) * args.rounds} queries per database (best 20 with snippets)")
    print(f"{'':<18} {'import':>9} {'median':>10} {'p99':>10} {'hits(boost)':>12}")
    for name, (imported, median, p99, hits) in results.items():
        print(
            f"{name:<18} {imported:>7.1f} s {median * 1e3:>7.2f} ms {p99 * 1e3:>7.2f} ms {hits:>12}"
        )


if __name__ == "__main__":
    main()
