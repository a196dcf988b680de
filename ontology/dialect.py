"""The few differences between a real Neo4j and ArcadeDB's Bolt endpoint, in one place.

The store code and its Cypher are the same for both; only the schema
statements it may send and the batch size differ. The dialect is chosen from
the server's agent string (ArcadeDB reports "Neo4j/5.26.0 compatible
(ArcadeDB …)"), so `NEO4J_URI` can point at either without configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from ontology import cypher


@dataclass(frozen=True)
class Dialect:
    """Server-specific knobs; everything else is portable Cypher in ontology.cypher."""

    name: str
    batch_size: int  # facts per UNWIND transaction
    schema: tuple[str, ...]  # idempotent constraint/index statements, run on open before bulk writes

    def batches(self, total: int) -> range:
        """Start offsets of the write batches for `total` rows."""
        return range(0, total, self.batch_size)


_SCHEMA = cypher.UNIQUE_CONSTRAINTS + cypher.FACT_INDEXES

# Neo4j 5: unique constraints back their own range index; 5k-row UNWINDs are the usual sweet spot.
NEO4J = Dialect(name="neo4j", batch_size=5_000, schema=_SCHEMA)
# ArcadeDB: same statements (MERGE without the constraint is ~40x slower). Batch size measured on a warm
# server (20k facts, batches of 500/1k/2k/5k/20k in one transaction each): server CPU per fact flat within the
# noise of a shared machine (160-210 µs), so 2k keeps transactions and the test server's heap small. Two
# parallel sessions did not help: their subject MERGEs collide on the unique constraint (retried) and the
# server's CPU per fact rose.
ARCADEDB = Dialect(name="arcadedb", batch_size=2_000, schema=_SCHEMA)


def for_agent(agent: str) -> Dialect:
    """Pick the dialect from `driver.get_server_info().agent`."""
    return ARCADEDB if "arcadedb" in agent.lower() else NEO4J
