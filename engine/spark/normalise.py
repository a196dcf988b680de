"""Normalisation on Spark: engine.normalize's rules (its docstring is the contract) over bronze Parquet.

Ingest stays on DuckDB: engine.ingest.load reads and quarantines the source exactly as always, and the
usable staged rows (event ids generated as engine.normalize does) land as bronze Parquet that Spark
reads. Spark dedupes (a window per (tenant, event_id)), resolves identities (the distinct alias links
go to the driver, where engine.normalize's scipy components label them; the id -> canonical map comes
back as a broadcast join), flags bots (user-agent regex, the per-actor rate window) and late arrivals,
numbers seq and sessions per actor bucket with engine.sequencing's numpy `_sequence` (applyInArrow),
derives the states with the Spark-compiled rules and writes them as Parquet. The driver loads them into
the run's `events` working table (engine.sequencing's), which engine.journeys.build writes out as the
workspace's silver layer (engine.silver), and writes `rejected_events`, the identity links and map, the
rate bots and the counts with engine.normalize's own functions.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructField, StructType

from engine import normalize as duck
from engine import sequencing
from engine.actor_batches import new_actor_flags
from engine.config import Config
from engine.normalize import NormalizeSummary
from engine.spark import Layout, parquet_glob
from engine.spark.session import session
from engine.states import case_sql

log = logging.getLogger(__name__)
SEQ_ORDER = ("tenant_id", "actor_id", "ts", "input_order", "event_id")  # engine.sequencing's order within an actor
EVENT_COLUMNS = ("tenant_id", "actor_id", "event_id", "event_name", "ts", "received_at", "session_id", "platform",
                 "user_agent", "properties", "input_order", "seq", "state_raw", "state_semantic", "state_lifecycle")
_CARRIED = ("tenant_id", "actor_id", "event_id", "event_name", "ts", "received_at", "platform", "user_agent",
            "properties", "input_order")
_FLAGGED = "_jg_spark_flagged"
_EPOCH = datetime(1970, 1, 1)
_US = 1_000_000
BUCKET_EVENTS = 500_000  # events per applyInArrow call, about: a bucket is held in memory whole


def normalize(con: duckdb.DuckDBPyConnection, cfg: Config, layout: Layout, watermark: datetime | None) -> NormalizeSummary:
    """Build `events` and `rejected_events` from `staged_events` on Spark; the same counts as engine.normalize.

    Always a full recompute (the pipeline turns an incremental plan into a full one for Spark)."""
    spark = session()
    usable = _land(con, layout, watermark)
    log.debug("spark: bronze landed (%d usable rows)", usable)
    deduped = _dedupe(spark.read.parquet(str(layout.bronze)), cfg.normalize.dedupe_window_s)
    merged, identity = _identities(spark, con, deduped, cfg.normalize.alias_events)
    flagged, bursts = _flag(spark, deduped, identity, cfg, watermark, layout)
    flagged = flagged.persist()
    try:
        bursts.write.mode("overwrite").parquet(str(layout.bursts))
        rejected = F.col("duplicate") | F.col("bot") | F.col("late_raw")
        (flagged.where(rejected).select("input_order", "tenant_id", "actor_id", "event_id", "ts", "duplicate", "bot", "late_raw")
         .write.mode("overwrite").parquet(str(layout.rejected)))
        sequenced = _sequence(flagged.where(~rejected), cfg.inactivity_gap_s, buckets(spark, usable))
        _with_states(sequenced, cfg).write.mode("overwrite").parquet(str(layout.events))
    finally:
        flagged.unpersist()
    log.debug("spark: events, rejected rows and rate bots written")
    accepted = _accepted(spark.read.parquet(str(layout.events)))
    accepted = dataclasses.replace(accepted, inserted=load_events(con, layout.events, accepted.events))
    log.debug("spark: %d events loaded into the run's events table", accepted.events)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _jg_bursts AS SELECT tenant_id, actor_id FROM read_parquet({parquet_glob(layout.bursts)})")
    duck.keep_bot_actors(con)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {_FLAGGED} AS SELECT * FROM read_parquet({parquet_glob(layout.rejected)})")
    try:
        duck._write_rejected(con, None, _FLAGGED)
        summary = duck._summary(con, merged, accepted, None, _FLAGGED)
    finally:
        con.execute(f"DROP VIEW IF EXISTS {_FLAGGED}")
    duck._drop_work(con)  # the staging table and the work tables are consumed, as on DuckDB
    return summary


def load_events(con: duckdb.DuckDBPyConnection, folder: Path, n_events: int) -> int:
    """(Re)create the run's `events` table from the Parquet files Spark wrote (columns by name); the rows inserted."""
    sequencing.create_events_table(con)
    if not n_events:
        return 0
    return int(con.execute(f"INSERT INTO events SELECT {', '.join(EVENT_COLUMNS)} FROM read_parquet({parquet_glob(folder)})"
                           ).fetchall()[0][0])


def buckets(spark: SparkSession, n_events: int) -> int:
    """How many actor buckets the per-actor stages use: at least one per core, about BUCKET_EVENTS events each."""
    return max(spark.sparkContext.defaultParallelism, math.ceil(n_events / BUCKET_EVENTS))


def actor_bucket(n: int) -> Column:
    return F.pmod(F.xxhash64("tenant_id", "actor_id"), F.lit(n))


def micros(column: str) -> Column:
    """Epoch microseconds of a TIMESTAMP_NTZ column (the session zone is UTC, so the cast shifts nothing)."""
    return F.unix_micros(F.col(column).cast("timestamp"))


def _land(con: duckdb.DuckDBPyConnection, layout: Layout, watermark: datetime | None) -> int:
    """Write bronze (usable staged rows, properties as JSON text) and the known keys; return the usable row count."""
    if layout.root.exists():
        shutil.rmtree(layout.root)
    layout.root.mkdir(parents=True)
    con.execute(f"""COPY (SELECT * REPLACE (CAST(properties AS VARCHAR) AS properties) FROM ({duck.usable_rows_sql()}))
                    TO '{_quoted(layout.bronze)}' (FORMAT parquet)""")
    con.execute(f"COPY ({duck._known_events_sql(con, watermark)}) TO '{_quoted(layout.known)}' (FORMAT parquet)")
    return int(con.execute("SELECT count(*) FROM staged_events WHERE reason IS NULL").fetchall()[0][0])


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _dedupe(bronze: DataFrame, window_s: int) -> DataFrame:
    """engine.normalize._dedupe: a repeat within the window is a duplicate, one beyond it a new event with '#n'."""
    by_key = Window.partitionBy("tenant_id", "event_id").orderBy("ts", "input_order")
    ranked = (bronze.withColumn("_occurrence", F.row_number().over(by_key))
              .withColumn("_span", micros("ts") - F.unix_micros(F.first("ts").over(by_key).cast("timestamp"))))
    later = F.col("_occurrence") > 1
    renamed = F.concat(F.col("event_id"), F.lit("#"), F.col("_occurrence").cast("string"))
    return (ranked.withColumn("duplicate", later & (F.col("_span") <= window_s * _US))
            .withColumn("event_id", F.when(later & (F.col("_span") > window_s * _US), renamed).otherwise(F.col("event_id")))
            .drop("_occurrence", "_span"))


def _identities(spark: SparkSession, con: duckdb.DuckDBPyConnection, deduped: DataFrame,
                alias_events: tuple[str, ...]) -> tuple[int, DataFrame | None]:
    """Alias links collected to the driver, labelled (and kept) by engine.normalize (scipy), the id map sent back."""
    def collect(con: duckdb.DuckDBPyConnection, events: tuple[str, ...]) -> None:
        links = (deduped.where(~F.col("duplicate") & F.col("user_id").isNotNull() & F.col("anonymous_id").isNotNull()
                               & F.col("event_name").isin(list(events)))
                 .select("tenant_id", "user_id", "anonymous_id").distinct().toArrow())
        con.register("_jg_links_arrow", links)
        try:
            con.execute("INSERT INTO _jg_links SELECT tenant_id, user_id, anonymous_id FROM _jg_links_arrow")
        finally:
            con.unregister("_jg_links_arrow")

    merged = duck.resolve_identities(con, alias_events, None, collect)
    ids = con.sql(f"SELECT tenant_id, kind, id, canonical FROM {duck._IDENTITY}").to_arrow_table()
    return merged, spark.createDataFrame(ids) if ids.num_rows else None


def _flag(spark: SparkSession, deduped: DataFrame, identity: DataFrame | None, cfg: Config,
          watermark: datetime | None, layout: Layout) -> tuple[DataFrame, DataFrame]:
    """Resolved actor, bot (user agent, then rate) and late flags, as engine.normalize._flag_bots_and_late;
    and the rate bots (tenant, actor)."""
    resolved = _resolve(deduped, identity)
    duplicate = F.col("duplicate")
    pattern = duck._bot_pattern(cfg.normalize.bots.user_agent_patterns)
    ua_bot = F.coalesce(F.col("user_agent"), F.lit("")).rlike("(?iu)" + pattern) if pattern else F.lit(False)
    tolerance = int(cfg.normalize.late_arrival_tolerance_s) * _US
    if watermark is None:
        sealed = F.lit(None).cast("boolean")
    else:
        known = spark.read.parquet(str(layout.known)).withColumn("_known", F.lit(True))
        resolved = resolved.join(known, ["tenant_id", "event_id"], "left")
        limit = (watermark - _EPOCH) // timedelta(microseconds=1) - tolerance
        sealed = (micros("ts") < F.lit(limit)) & F.col("_known").isNull()
    late = ~duplicate & (((micros("received_at") - micros("ts")) > tolerance) | sealed)
    flagged = (resolved.withColumn("bot", ~duplicate & ua_bot)
               .withColumn("late_raw", F.coalesce(late, F.lit(False))).select(*_CARRIED, "duplicate", "bot", "late_raw"))
    return _rate_bots(flagged, max(int(cfg.normalize.bots.max_events_per_minute), 0))


def _resolve(deduped: DataFrame, identity: DataFrame | None) -> DataFrame:
    if identity is None:
        return deduped.withColumn("actor_id", F.coalesce(F.col("user_id"), F.col("anonymous_id")))
    users = identity.where(F.col("kind") == "u").select("tenant_id", F.col("id").alias("user_id"), F.col("canonical").alias("_cu"))
    anons = identity.where(F.col("kind") == "a").select("tenant_id", F.col("id").alias("anonymous_id"), F.col("canonical").alias("_ca"))
    joined = (deduped.join(F.broadcast(users), ["tenant_id", "user_id"], "left")
              .join(F.broadcast(anons), ["tenant_id", "anonymous_id"], "left"))
    actor = (F.when(F.col("user_id").isNotNull(), F.coalesce(F.col("_cu"), F.col("user_id")))
             .otherwise(F.coalesce(F.col("_ca"), F.col("anonymous_id"))))
    return joined.withColumn("actor_id", actor)


def _rate_bots(flagged: DataFrame, limit: int) -> tuple[DataFrame, DataFrame]:
    """Every non-duplicate event of an actor with limit + 1 events less than 60 s apart is a bot's; and those actors."""
    by_actor = Window.partitionBy("tenant_id", "actor_id").orderBy("ts")
    span = micros("ts") - F.lag(micros("ts"), limit).over(by_actor) if limit else F.lit(0)
    bursts = (flagged.where(~F.col("duplicate")).select("tenant_id", "actor_id", span.alias("_span"))
              .where(F.col("_span") < 60 * _US).select("tenant_id", "actor_id").distinct())
    burst = ~F.col("duplicate") & F.coalesce(F.col("_burst"), F.lit(False))
    marked = flagged.join(bursts.withColumn("_burst", F.lit(True)), ["tenant_id", "actor_id"], "left")
    return marked.withColumn("bot", F.col("bot") | burst).drop("_burst"), bursts


def _sequence(accepted: DataFrame, gap_s: int, n_buckets: int) -> DataFrame:
    """seq and session number per actor: engine.sequencing._sequence on each actor bucket (applyInArrow)."""
    rows = accepted.select(*_CARRIED).withColumn("_bucket", actor_bucket(n_buckets))
    schema = StructType([*rows.schema.fields, StructField("seq", LongType()), StructField("session_no", LongType())])
    def numbered(table: pa.Table) -> pa.Table:  # a plain typed function: applyInArrow infers its kind from the hints
        return sequence_bucket(table, gap_s)

    return rows.groupBy("_bucket").applyInArrow(numbered, schema).drop("_bucket")


def sequence_bucket(table: pa.Table, gap_s: int) -> pa.Table:
    """One bucket of whole actors, sorted by engine.sequencing's key order (binary string order), numbered."""
    table = table.sort_by([(key, "ascending") for key in SEQ_ORDER])
    seq, session_no = sequencing._sequence(table, new_actor_flags(table), gap_s)
    return table.append_column("seq", pa.array(seq)).append_column("session_no", pa.array(session_no))


def _with_states(sequenced: DataFrame, cfg: Config) -> DataFrame:
    """The `events` columns, states from the Spark-compiled rules (first match wins, as in engine.states)."""
    rows = sequenced.withColumn("session_id", F.concat(F.col("actor_id"), F.lit("#"), F.col("session_no").cast("string")))
    states = {"state_raw": F.col("event_name"), "state_semantic": F.expr(case_sql(cfg.states, "states", "spark")),
              "state_lifecycle": F.expr(case_sql(cfg.lifecycle, "lifecycle", "spark"))}
    return rows.select(*[states[c].alias(c) if c in states else F.col(c) for c in EVENT_COLUMNS])


def _accepted(events: DataFrame) -> sequencing.Accepted:
    total, start, end = events.agg(F.count(F.lit(1)), F.min("ts"), F.max("ts")).first() or (0, None, None)
    actors = events.select("tenant_id", "actor_id").distinct().count()
    return sequencing.Accepted(events=int(total), actors=int(actors), start=start, end=end)
