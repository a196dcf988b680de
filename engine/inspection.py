"""`journeygraph inspect FILE`: how a file would be read and what journey would be inferred from it, before a run.

It reads the file into a throwaway in-memory database with the same reader
and normaliser as `run`, then prints the detected format, the column mapping,
the time range, the number of actors and distinct events, the proposed start
and outcome events with one line of evidence each, and the most common
events. `--write` saves the proposal as a ready journeygraph.yaml. When a run
accepts nothing, `nothing_accepted` builds the message that shows the counts,
the first rejected rows with their reasons and the way out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import yaml

from engine.config import Config
from engine.dbsettings import quiet
from ontology.errors import ConfigError, IngestError

SHOWN_REJECTS = 3
SHOWN_EVENTS = 10
_RAW_CHARS = 240


class NothingAccepted(IngestError):
    """A run's source gave no usable event; the message carries the counts and the first rejected rows."""


def rejected_rows(con: duckdb.DuckDBPyConnection, run_id: str, limit: int = SHOWN_REJECTS) -> list[tuple[Any, ...]]:
    return con.execute("SELECT source, line, reason, raw FROM quarantine WHERE run_id = ? ORDER BY source, line LIMIT ?",
                       [run_id, limit]).fetchall()


def _reject_lines(rows: Sequence[tuple[Any, ...]]) -> list[str]:
    out = []
    for source, line, reason, raw in rows:
        text = (raw or "").replace("\n", " ")
        text = text if len(text) <= _RAW_CHARS else text[:_RAW_CHARS] + "…"
        out.append(f"  {Path(str(source)).name} line {line}: {reason}: {text}")
    return out


def nothing_accepted(con: duckdb.DuckDBPyConnection, run_id: str, counts: dict[str, Any], notes: Sequence[str]) -> str:
    """The error text for a run with no accepted event: counts, how each file was read, rejected rows, what to do."""
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(counts.get("quarantined_by_reason", {}).items())) or "none"
    head = (f"no accepted events: read {counts.get('events_read', 0)} rows; quarantined {counts.get('quarantined', 0)} "
            f"({reasons}); duplicates {counts.get('duplicates', 0)}, bots {counts.get('bots_filtered', 0)}, "
            f"late {counts.get('late_rejected', 0)}")
    lines = [head]
    lines += [f"read {note}" for note in notes]
    rows = rejected_rows(con, run_id)
    if rows:
        lines.append(f"first {len(rows)} rejected rows:")
        lines += _reject_lines(rows)
    elif not counts.get("events_read"):
        lines.append("the source holds no rows (an empty file?)")
    lines.append("next: `journeygraph inspect FILE` shows the columns and how they map; name yours with "
                 "normalize.fields, normalize.timestamp_format or normalize.timestamp_unit (docs/your-data.md)")
    return "\n".join(lines)


def with_mapping(cfg: Config, files: Sequence[str]) -> Config:
    """cfg with the detected column mapping and time unit written out in `normalize`, for a single file.

    So the journeygraph.yaml a no-config run or `inspect --write` leaves shows which column is which, ready
    to edit; re-running with it reads the file the same way. Several files may differ: they keep detection.
    """
    from engine import formats, ingest

    if len(files) != 1 or ingest.kind_of(files[0]) == "xes":
        return cfg
    reading = ingest.reading_for(files[0], ingest.kind_of(files[0]), cfg)
    norm = dataclasses.replace(cfg.normalize, fields=formats.explicit_fields(reading),
                               timestamp_unit=reading.unit, timestamp_format=reading.fmt)
    return dataclasses.replace(cfg, normalize=norm)


def write_yaml(path: Path, raw: dict[str, Any], why: Sequence[str]) -> Path:
    """A journeygraph.yaml holding `raw`, headed by the reasons for each inferred choice as comments."""
    header = ["# journeygraph.yaml inferred from the data (edit it, then `journeygraph run -c journeygraph.yaml`).",
              "# Keys are described in docs/your-data.md and README.md; why each guess was made:"]
    header += [f"#   {line}" for line in why]
    path.write_text("\n".join(header) + "\n" + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return path


def inspect(source: str, write: str | None = None) -> str:
    """The inspect report for `source` (a file or glob); with `write`, also save the proposed config there."""
    from engine import infer, ingest, normalize
    from engine.config import from_dict, to_raw

    cfg = from_dict({})
    con = quiet(duckdb.connect())  # its JSON is all stdout holds
    try:
        loaded = ingest.load(con, source, cfg, "inspect")
        norm = normalize.normalize(con, cfg, watermark=None)
        lines = [f"file: {', '.join(loaded.files)}"] + [f"read {note}" for note in loaded.notes]
        counts = norm.to_dict()
        lines.append(f"rows {counts['events_read']}: accepted {counts['accepted']}, quarantined {counts['quarantined']}"
                     + (f" {dict(sorted(counts['quarantined_by_reason'].items()))}" if counts["quarantined"] else ""))
        if not norm.accepted:
            lines.append(nothing_accepted(con, "inspect", counts, ()))
            return "\n".join(lines) + "\n"
        lines += _overview(con)
        inferred = infer.infer_journey(con, cfg)
        lines += [f"proposed {note}" for note in inferred.inferred[1:-1]]
        if write:
            raw = to_raw(dataclasses.replace(with_mapping(inferred, loaded.files), source=str(Path(loaded.files[0]).resolve())
                                             if len(loaded.files) == 1 else source))
            lines.append(f"wrote {write_yaml(Path(write), raw, inferred.inferred)}; run it with `journeygraph run -c {write}`")
        return "\n".join(lines) + "\n"
    except IngestError as exc:
        raise ConfigError(f"inspect {source}: {exc}") from exc
    finally:
        con.close()


def _overview(con: duckdb.DuckDBPyConnection) -> list[str]:
    first, last, actors, names = con.execute(
        "SELECT min(ts), max(ts), count(DISTINCT actor_id), count(DISTINCT event_name) FROM events").fetchall()[0]
    top = con.execute("SELECT event_name, count(*) AS n FROM events GROUP BY 1 ORDER BY n DESC, 1 LIMIT ?",
                      [SHOWN_EVENTS]).fetchall()
    return [f"time range {first:%Y-%m-%dT%H:%M:%SZ} .. {last:%Y-%m-%dT%H:%M:%SZ}",
            f"actors {actors}, distinct events {names}",
            "most common events: " + ", ".join(f"{name} ({n})" for name, n in top)]
