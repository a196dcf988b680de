"""The SparkSession the Spark engine runs on, with the settings the DuckDB parity depends on.

`local[2]` unless JOURNEYGRAPH_SPARK_MASTER names a cluster (or a session is already active: a test
fixture's, or a notebook's on Databricks). Whatever the session, the runtime settings below are set on
it, because the byte-identical output relies on them:

* session time zone UTC: timestamps are TIMESTAMP_NTZ (DuckDB's TIMESTAMP), and the only instant
  conversion (unix_micros on a cast to TIMESTAMP) then shifts nothing;
* ANSI mode on (Spark 4's default): the rule compiler (engine.rules.to_spark_sql) emulates DuckDB
  where ANSI would abort (x / 0) or differ (casts), so a run never depends on the legacy mode;
* Arrow for Python exchange, and Parquet timestamps without a zone read as TIMESTAMP_NTZ.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RUNTIME = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
# Only for a session this module starts: a small local machine (the tests' and the benchmark's).
LOCAL = {
    "spark.sql.shuffle.partitions": os.environ.get("JOURNEYGRAPH_SPARK_PARTITIONS", "2"),
    "spark.driver.memory": os.environ.get("JOURNEYGRAPH_SPARK_DRIVER_MEMORY", "1g"),
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


def session() -> SparkSession:
    """The active SparkSession, else a new one; either way with the parity settings applied."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None:
        builder = SparkSession.builder.master(os.environ.get("JOURNEYGRAPH_SPARK_MASTER", "local[2]")).appName("journeygraph")
        for key, value in {**LOCAL, **RUNTIME}.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
    for key, value in RUNTIME.items():
        spark.conf.set(key, value)
    return spark
