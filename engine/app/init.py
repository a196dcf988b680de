"""`journeygraph init`: write a commented journeygraph.yaml to start from."""

from __future__ import annotations

from pathlib import Path

from ontology.errors import ConfigError

TEMPLATE = """\
# journeygraph project config. Every key but `source` has a default.
# Docs: docs/your-data.md (expected columns, exports recognised, timestamps, normalize.fields).
# Validate by running `journeygraph run -c journeygraph.yaml`; `journeygraph inspect FILE --write` proposes one.

# Events: a path or glob (.jsonl .json .csv .parquet .xes .xes.gz), or a SQL query on a
# DuckDB/Postgres URL, e.g. "postgresql://user@host/db SELECT * FROM events".
source: events.jsonl

normalize:
  dedupe_window: 24h            # exact duplicate event_ids inside this window are dropped (and counted)
  late_arrival_tolerance: 48h   # events later than this for an already sealed snapshot are rejected
  bots: {user_agent_patterns: ["bot", "crawler", "healthcheck"], max_events_per_minute: 120}
  identity: {alias_events: ["identify", "login"]}   # events carrying both anonymous_id and user_id
  # fields: {user_id: customer_ref, event_name: action, timestamp: happened}   # your column names
  # timestamp_format: "%d/%m/%Y %H:%M:%S"   # day-first dates; timestamp_unit: s|ms|us|ns for epoch numbers

sessions: {inactivity_gap: 30m}

# Semantic states: SQL boolean expressions over event fields (properties.<path> for nested ones).
# The raw level is the event name itself.
states:
  - {name: sign_up, when: "event_name = 'sign_up'"}
  - {name: import_data, when: "event_name IN ('csv_import', 'api_import')"}
  - {name: feature_used, when: "event_name = 'feature_used' AND properties.feature <> 'settings'"}
  - {name: invite_teammate, when: "event_name = 'invite_sent'"}

# Lifecycle: coarse positions, first match wins.
lifecycle:
  - {name: activated, when: "event_name = 'invite_sent'"}

journeys:
  activation:
    level: semantic             # raw | semantic | lifecycle
    start: sign_up
    outcomes:
      converted: "event_name = 'subscription_started'"
      dropped: {inactive_for: 14d}
    window: 30d                 # journeys younger than this at the data's end are censored, not dropped

segments:
  platform: {column: platform}
  plan: {column: properties.plan}

releases: []                    # e.g. [{name: v2.3, at: "2026-03-01T00:00:00Z"}]

snapshots: {period: 7d}         # one immutable snapshot per period, plus one over all data

detectors: {}                   # thresholds; `journeygraph detectors` lists them with defaults

scoring: {weights: {significance: 0.30, magnitude: 0.25, reach: 0.20, actionability: 0.15, novelty: 0.10}}

narrator: {backend: template}   # template | anthropic | openai (keys from ANTHROPIC_API_KEY / OPENAI_API_KEY)

store: {backend: embedded}      # embedded | neo4j (uri/user/password or NEO4J_URI/NEO4J_USER/NEO4J_PASSWORD)

privacy: {allowed_properties: [plan, platform, feature], min_group_size: 20}
"""


def write_config(directory: Path, *, force: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "journeygraph.yaml"
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists; pass --force to overwrite it")
    target.write_text(TEMPLATE)
    return target
