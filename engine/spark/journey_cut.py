"""The journey rule on Spark: engine.journeys' numpy cut (journey_arrays) per actor bucket, via applyInArrow.

Spark selects each actor's rows inside its observation window (as engine.journeys._rows_sql does, with
the Spark-compiled outcome and segment rules), hash-partitions them by (tenant, actor) into buckets and
runs engine.journeys._cut_chunk on each bucket: one row per journey and one per kept step come back as
Parquet. The driver numbers the journeys in (tenant, actor) order, as the DuckDB path does, and hands
them in chunks to engine.journeys._insert, which decides the rule's outcome, end and journey ids in
DuckDB SQL (journey_cuts and the steps; engine.journeys.build then decides censoring and writes the gold
steps): the times and ids are computed once, on the driver, by the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from engine import journeys as duck
from engine.config import JourneyConfig, Segment
from engine.spark import Layout, parquet_glob
from engine.spark.normalise import actor_bucket, buckets, micros
from engine.spark.session import session

log = logging.getLogger(__name__)
CHUNK_JOURNEYS = 500_000  # journeys handed to engine.journeys._insert at once: bounds the driver's memory
_TS = pa.timestamp("us")
_GROUP = [("start_ts", _TS), ("o_ts", _TS), ("o_name", pa.string()), ("has_cut", pa.bool_()), ("cut_prev_ts", _TS),
          ("last_ts", _TS), ("n_steps", pa.int64())]
_STEP = [("step", pa.int32()), ("state", pa.string()), ("ts", _TS), ("event_id", pa.string())]


def output_schema(n_segments: int) -> pa.Schema:
    """One schema for both row kinds ('g' journey, 's' step); the other kind's columns are null."""
    segments = [(f"seg_{i}", pa.string()) for i in range(n_segments)]
    return pa.schema([("kind", pa.string()), ("tenant_id", pa.string()), ("actor_id", pa.string()),
                      *_GROUP, *segments, *_STEP])


def build_one(con: duckdb.DuckDBPyConnection, journey: JourneyConfig, segments: tuple[Segment, ...],
              only_touched: bool = False, *, layout: Layout, indexes: dict[str, int]) -> None:
    """engine.journeys.build's per-definition step: cut on Spark, then insert on the driver (every actor: a
    Spark run is a full recompute, so journeys.build never asks for the touched actors alone)."""
    if only_touched:
        raise AssertionError("a Spark run is a full recompute: no journey cut is kept from a previous run")
    spark = session()
    rows = _window_rows(spark.read.parquet(str(layout.events)), journey, segments)
    schema = output_schema(len(segments))
    n_buckets = buckets(spark, con.execute("SELECT count(*) FROM events").fetchall()[0][0])
    out = (rows.withColumn("_bucket", actor_bucket(n_buckets)).groupBy("_bucket")
           .applyInArrow(_cutter(journey, len(segments), schema), _spark_schema(schema)))
    folder = layout.journey(indexes[journey.name])
    out.write.mode("overwrite").parquet(str(folder))
    log.debug("spark: journey %s cut", journey.name)
    _insert_all(con, journey, segments, folder)
    log.debug("spark: journey %s inserted", journey.name)


def _window_rows(events: DataFrame, journey: JourneyConfig, segments: tuple[Segment, ...]) -> DataFrame:
    """engine.journeys._rows_sql on Spark: each actor's rows from its first start event to the window's end."""
    level = duck._level_column(journey)
    starts = (events.where(F.col(level) == journey.start).groupBy("tenant_id", "actor_id")
              .agg(F.min("seq").alias("_start_seq"), F.min_by("ts", "seq").alias("_start_ts")))
    window = micros("ts") <= micros("_start_ts") + int(journey.window_s) * 1_000_000
    rows = events.join(starts, ["tenant_id", "actor_id"]).where((F.col("seq") >= F.col("_start_seq")) & window)
    hit = F.expr(f"CASE WHEN seq > _start_seq THEN {duck.outcome_code_sql(journey, 'spark')} END")
    segs = [F.expr(duck.segment_sql(s, "spark")).alias(f"seg_{i}") for i, s in enumerate(segments)]
    return rows.select("tenant_id", "actor_id", "seq", micros("ts").alias("ts_us"), "event_id", F.col(level).alias("state"),
                       hit.alias("hit"), *segs)


def _cutter(journey: JourneyConfig, n_segments: int, schema: pa.Schema) -> Callable[[pa.Table], pa.Table]:
    def cut(table: pa.Table) -> pa.Table:  # a plain typed function: applyInArrow infers its kind from the hints
        return cut_bucket(table, journey, n_segments, schema)

    return cut


def cut_bucket(table: pa.Table, journey: JourneyConfig, n_segments: int, schema: pa.Schema) -> pa.Table:
    """Whole actors of one bucket -> their journeys and steps (engine.journeys._cut_chunk), steps keyed by actor."""
    table = table.sort_by([("tenant_id", "ascending"), ("actor_id", "ascending"), ("seq", "ascending")])
    groups, steps = duck._cut_chunk(table, journey, n_segments, 0)
    jidx = steps.column("jidx")
    steps = (steps.drop_columns(["jidx"]).append_column("tenant_id", groups.column("tenant_id").take(jidx))
             .append_column("actor_id", groups.column("actor_id").take(jidx)))
    kinds = [_with_kind(groups.drop_columns(["jidx"]), "g"), _with_kind(steps, "s")]
    merged = pa.concat_tables(kinds, promote_options="default")
    return pa.table({f.name: _column(merged, f) for f in schema}, schema=schema)


def _with_kind(table: pa.Table, kind: str) -> pa.Table:
    return table.append_column("kind", pa.array([kind] * table.num_rows, pa.string()))


def _column(table: pa.Table, field: pa.Field) -> pa.ChunkedArray | pa.Array:
    if field.name in table.column_names:
        return table.column(field.name).cast(field.type)
    return pa.nulls(table.num_rows, field.type)


def _spark_schema(schema: pa.Schema) -> str:
    names = {pa.string(): "STRING", _TS: "TIMESTAMP_NTZ", pa.bool_(): "BOOLEAN", pa.int64(): "BIGINT", pa.int32(): "INT"}
    return ", ".join(f"{f.name} {names[f.type]}" for f in schema)


def _insert_all(con: duckdb.DuckDBPyConnection, journey: JourneyConfig, segments: tuple[Segment, ...], folder: Path) -> None:
    """Journeys numbered in (tenant, actor) order, as the DuckDB path streams them, inserted chunk by chunk."""
    files = parquet_glob(folder)
    segs = "".join(f", seg_{i}" for i in range(len(segments)))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _jg_spark_journeys AS
        SELECT CAST(row_number() OVER (ORDER BY tenant_id, actor_id) - 1 AS BIGINT) AS jidx, tenant_id, actor_id,
               {', '.join(name for name, _ in _GROUP)}{segs}
        FROM read_parquet({files}) WHERE kind = 'g'""")
    try:
        total = con.execute("SELECT count(*) FROM _jg_spark_journeys").fetchall()[0][0]
        for low in range(0, total, CHUNK_JOURNEYS):
            bounds = f"jidx >= {low} AND jidx < {low + CHUNK_JOURNEYS}"
            groups = con.sql(f"SELECT * FROM _jg_spark_journeys WHERE {bounds} ORDER BY jidx").to_arrow_table()
            steps = con.sql(f"""
                SELECT g.jidx, s.step, s.state, s.ts, s.event_id
                FROM read_parquet({files}) s JOIN _jg_spark_journeys g USING (tenant_id, actor_id)
                WHERE s.kind = 's' AND g.{bounds} ORDER BY g.jidx, s.step""").to_arrow_table()
            duck._insert(con, journey, segments, groups, steps)
    finally:
        con.execute("DROP TABLE IF EXISTS _jg_spark_journeys")
