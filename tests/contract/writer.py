"""A fact writer the crash tests kill -9 mid-write: writes make_facts(N) in chunks, one line per chunk.

usage (env JG_BACKEND, JG_WORKSPACE and, for neo4j, NEO4J_*): python writer.py N CHUNK
Prints `CHUNK k` after chunk k is stored, `DONE` at the end; on a journeygraph
error prints its one-line message to stderr and exits 3.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from factset import make_facts

from ontology.errors import JourneyGraphError
from ontology.store import StoreConfig, open_store

ALLOWED_PROPERTIES = ("plan", "platform")


def main(n: int, chunk: int) -> int:
    backend = os.environ["JG_BACKEND"]
    options = {"max_attempts": 3} if backend == "neo4j" else {}
    cfg = StoreConfig(backend="neo4j") if backend == "neo4j" else None  # uri and credentials from NEO4J_*
    facts = make_facts(n)
    try:
        store = open_store(backend, cfg, Path(os.environ["JG_WORKSPACE"]), allowed_properties=ALLOWED_PROPERTIES,
                           **options)
        for k, start in enumerate(range(0, n, chunk)):
            store.write(facts[start:start + chunk])
            print(f"CHUNK {k}", flush=True)
        store.close()
    except JourneyGraphError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 3
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]), int(sys.argv[2])))
