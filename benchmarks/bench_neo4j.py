"""Neo4j store benchmark: facts/s through Bolt and p50 lookup latency by entity, at 10k and 100k facts.

    python benchmarks/bench_neo4j.py --sizes 10000 100000          # starts a throw-away ArcadeDB Bolt server
    python benchmarks/bench_neo4j.py --out benchmarks/results/bench_neo4j.json
    NEO4J_URI=bolt://… NEO4J_PASSWORD=… python benchmarks/bench_neo4j.py --wipe   # a real Neo4j (database is emptied!)

Same facts and the same `measure` as benchmarks/bench_stores.py (validated
writes in 10k-fact calls, an idempotent rewrite, 200 seeded entity lookups),
so the numbers compare with the embedded store's.

Warm state, said so: a JVM server runs the first tens of thousands of facts
several times slower while its JIT compiles (measured on ArcadeDB: the first
10k facts at ~600 facts/s with half of the server's CPU in the C1/C2 compiler
threads; JIT CPU falls under ~40 µs/fact only after ~100k facts). Before the
sizes are measured, `--warmup` facts (other facts, another database) are
written in 10k-fact calls and each call's rate and server CPU split are
reported in `warmup_calls`, so the cold figure stays visible and the measured
sizes are the warm state; 400 lookups warm the read path. Each size then gets
a fresh, empty database (dropping one is instant; `DETACH DELETE` of 100k
facts took minutes). `--warmup 0` measures a cold server.

Both sides' CPU is reported because the Bolt server shares the machine: the
client's process CPU, the server's CPU during the writes only (from
/proc/<pid>/stat), per fact, and the load average before and after.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ontology.model import Fact
from ontology.neo4j_store import Neo4jStore
from ontology.store import StoreConfig

sys.path.insert(0, str(Path(__file__).parent))
from bench_stores import LOOKUPS, lookups, measure, synthetic_facts

CALL = 10_000  # facts per store.write call, as in bench_stores.measure


def _load_boltserver() -> Any:
    """tests/boltserver.py by file path: putting tests/ on sys.path would shadow our packages with tests/<pkg>."""
    path = Path(__file__).parents[1] / "tests" / "boltserver.py"
    spec = importlib.util.spec_from_file_location("boltserver", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules["boltserver"] = module
    spec.loader.exec_module(module)
    return module


BoltServer = _load_boltserver().BoltServer


def _cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process from /proc (Linux), or None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, TypeError):
        return None


JVM_THREADS = {"jit": ("C1 CompilerThre", "C2 CompilerThre"), "gc": ("GC Thread", "G1 ", "VM Thread")}


def _server_cpu(pid: int | None) -> dict[str, float] | None:
    """The server's CPU seconds: in total, in JIT compiler threads and in GC threads (/proc/<pid>/task/*/comm).

    Bolt connection threads come and go (their time stays in the process total),
    so the query work is total - jit - gc: what a warm server would spend.
    """
    total = _cpu_seconds(pid)
    if total is None:
        return None
    split = {"total": total, "jit": 0.0, "gc": 0.0}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        for group, prefixes in JVM_THREADS.items():
            if name.startswith(prefixes):
                split[group] += (int(fields[11]) + int(fields[12])) / tick
    return split


@dataclass
class Target:
    """Where the facts go: our own ArcadeDB server (fresh database per run) or an external NEO4J_URI (wiped)."""

    description: str
    pid: int | None
    config: Callable[[str | None], StoreConfig]
    server: Any = None
    _count: int = field(default=0)

    @contextmanager
    def database(self, wipe: bool) -> Iterator[StoreConfig]:
        """A config aimed at an empty database, emptied or dropped again afterwards."""
        if self.server is None:
            cfg = self.config(None)
            with Neo4jStore.open(cfg) as store:
                if store.count() and not wipe:
                    raise SystemExit(f"the database at {store.conn.uri} is not empty; pass --wipe to empty it first")
                _wipe(store)
            try:
                yield cfg
            finally:
                with Neo4jStore.open(cfg) as store:
                    _wipe(store)
            return
        self._count += 1
        name = f"bench{self._count}"
        self.server.create_database(name)
        try:
            yield self.config(name)
        finally:
            self.server.drop_database(name)


@contextmanager
def _target(heap: str) -> Iterator[Target]:
    """NEO4J_URI if set, else a throw-away ArcadeDB server."""
    if os.environ.get("NEO4J_URI"):
        yield Target(os.environ["NEO4J_URI"], None, lambda _: StoreConfig(backend="neo4j"))
        return
    with tempfile.TemporaryDirectory(prefix="jg-bench-bolt-") as tmp, BoltServer(Path(tmp), heap=heap) as server:
        def config(database: str | None) -> StoreConfig:
            return StoreConfig(backend="neo4j", uri=server.uri, user=server.auth[0], password=server.password,
                               database=database or server.database)

        yield Target(f"ArcadeDB Bolt {server.uri} (heap {heap})", server.pid, config, server)


def _wipe(store: Neo4jStore) -> None:
    with store._driver.session(database=store.conn.database) as session:
        session.run("MATCH (n) DETACH DELETE n").consume()


class ServerClock:
    """A store whose writes also add up the server's CPU seconds (what `measure` sees is the store's API)."""

    def __init__(self, store: Neo4jStore, pid: int | None) -> None:
        self.store, self.pid = store, pid
        self.server_cpu: dict[str, float] | None = dict.fromkeys(("total", "jit", "gc"), 0.0) if pid else None

    def write(self, facts: Sequence[Fact]) -> int:
        before = _server_cpu(self.pid)
        written = self.store.write(facts)
        after = _server_cpu(self.pid)
        if self.server_cpu is not None and before is not None and after is not None:
            for key in self.server_cpu:
                self.server_cpu[key] += after[key] - before[key]
        else:
            self.server_cpu = None
        return written

    def facts(self, **filters: Any) -> Any:
        return self.store.facts(**filters)

    def count(self) -> int:
        return self.store.count()


def warm_up(target: Target, n: int, wipe: bool) -> list[dict[str, Any]]:
    """Write n other facts in 10k calls: each call's rate and server CPU per fact (the first call is the cold JVM)."""
    calls: list[dict[str, Any]] = []
    if n <= 0:
        return calls
    facts = synthetic_facts(n, seed=99)
    with target.database(wipe) as cfg, Neo4jStore.open(cfg) as store:
        for start in range(0, n, CALL):
            chunk = facts[start:start + CALL]
            clock = ServerClock(store, target.pid)
            wall = time.perf_counter()
            clock.write(chunk)
            call: dict[str, Any] = {"facts_per_s": round(len(chunk) / (time.perf_counter() - wall))}
            if clock.server_cpu is not None:
                call.update({f"server_{key}_us_per_fact": round(1e6 * value / len(chunk))
                             for key, value in clock.server_cpu.items()})
            calls.append(call)
        wall = time.perf_counter()
        lookups(store, [facts[i].subject for i in range(0, n, max(1, n // (2 * LOOKUPS)))])  # warm the read path too
        calls.append({"lookups_s": round(time.perf_counter() - wall, 3)})
    return calls


def bench_size(target: Target, size: int, wipe: bool) -> dict[str, Any]:
    facts = synthetic_facts(size)
    load_before = os.getloadavg()
    with target.database(wipe) as cfg, Neo4jStore.open(cfg) as store:
        clock = ServerClock(store, target.pid)
        cpu0, wall0 = _cpu_seconds(target.pid), time.perf_counter()
        result = measure(clock, facts)  # type: ignore[arg-type]
        cpu1 = _cpu_seconds(target.pid)
        result["total_wall_s"] = round(time.perf_counter() - wall0, 3)
        result["server_cpu_s"] = round(cpu1 - cpu0, 3) if cpu0 is not None and cpu1 is not None else None
        result["client_us_cpu_per_fact"] = round(1e6 * result["write_cpu_s"] / size, 1)
        split = clock.server_cpu
        if split is not None:
            result["server_cpu_write_s"] = {key: round(value, 3) for key, value in split.items()}
            result["server_us_cpu_per_fact"] = round(1e6 * split["total"] / size, 1)
            result["server_us_cpu_per_fact_without_jit_gc"] = round(1e6 * (split["total"] - split["jit"] - split["gc"]) / size, 1)
        else:
            result["server_cpu_write_s"] = result["server_us_cpu_per_fact"] = None
            result["server_us_cpu_per_fact_without_jit_gc"] = None
        result["dialect"], result["batch_size"] = store.dialect.name, store.dialect.batch_size
    result["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    return result


def _line(size: int, r: dict[str, Any]) -> str:
    return (f"neo4j ({r['dialect']}) {size:>7} facts: {r['facts_per_s']:>7} facts/s wall, "
            f"CPU per fact client {r['client_us_cpu_per_fact']} µs + server {r['server_us_cpu_per_fact']} µs "
            f"({r['server_us_cpu_per_fact_without_jit_gc']} µs without JIT/GC threads), "
            f"lookup by entity p50 {r['lookup_p50_ms']} ms p95 {r['lookup_p95_ms']} ms "
            f"({r['facts_per_lookup']} facts/lookup), load {r['load_average_before_after']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--warmup", type=int, default=100_000,
                        help="facts written (and dropped) first so the JVM's JIT is warm; 0 measures a cold server")
    parser.add_argument("--heap", default="2g", help="JVM heap of the throw-away ArcadeDB server")
    parser.add_argument("--jvm-args", default="",
                        help="extra JVM flags for the throw-away ArcadeDB server (ARCADEDB_JVM_ARGS), e.g. -XX:TieredStopAtLevel=1")
    parser.add_argument("--wipe", action="store_true", help="empty a non-empty NEO4J_URI database first (and after)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    parser.add_argument("--out", type=Path, help="also write all results as one JSON file")
    args = parser.parse_args(argv)
    results = []
    if args.jvm_args:
        os.environ["ARCADEDB_JVM_ARGS"] = args.jvm_args  # read by arcadedb_embedded in the server's child process
    with _target(args.heap) as target:
        wipe = args.wipe or target.server is not None
        print(f"server: {target.description}", file=sys.stderr, flush=True)
        rates = warm_up(target, args.warmup, wipe)
        print(f"warm-up: {args.warmup} facts, per {CALL}-fact call: {json.dumps(rates)}", file=sys.stderr, flush=True)
        for size in args.sizes:
            result = {"backend": "neo4j", "server": target.description, "jvm_args": os.environ.get("ARCADEDB_JVM_ARGS", ""),
                      "warmup_facts": args.warmup,
                      "warmup_calls": rates, **bench_size(target, size, wipe)}
            results.append(result)
            print(json.dumps(result) if args.json else _line(size, result), flush=True)
    if args.out:
        meta = {"cpus": os.cpu_count(), "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        args.out.write_text(json.dumps({"machine": meta, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
