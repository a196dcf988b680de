#!/bin/bash
# Dump every user-visible output of three real runs into OUTDIR, to prove a speed change changed nothing:
#   benchmarks/snapshot_outputs.sh /tmp/before   # on the old code
#   benchmarks/snapshot_outputs.sh /tmp/after    # on the new code
#   diff -r /tmp/before /tmp/after && echo identical
# Inputs: the demo fixture, the dirty fixture, the 100k bench stream (benchmarks/generate_streams.py --events 100k) and
# BPI 2012 from ../shared/datasets (fixtures/bpi2012.yaml). Per input: `run`, `snapshots`, every
# `snapshot`, `feed` and `export` as JSON, and an order-free hash of every row of the derived tables.
set -euo pipefail
out=${1:?usage: benchmarks/snapshot_outputs.sh OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out"; mkdir -p "$out"
dump() {  # name source-or-empty config
  local ws="$out/ws_$1"
  journeygraph run ${2:+"$2"} -c "$3" -w "$ws" --format json \
    | python3 -c "import json,sys; d=json.load(sys.stdin); d.pop('seconds',None); print(json.dumps(d,sort_keys=True))" > "$out/$1_run.json"
  journeygraph snapshots -w "$ws" --format json > "$out/$1_snapshots.json"
  python3 -c "import json,sys; [print(s['snapshot_id']) for s in json.load(open(sys.argv[1]))]" "$out/$1_snapshots.json" \
    | while read -r id; do journeygraph snapshot "$id" -w "$ws" --format json; done > "$out/$1_snapshot_each.json"
  journeygraph feed -w "$ws" --format json > "$out/$1_feed.json"
  journeygraph export -w "$ws" --format json > "$out/$1_export.json"
  PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" python3 - "$ws" > "$out/$1_tables.txt" <<'PY'
import sys
from engine.workspace import Workspace  # events and journey_steps are views over the workspace's Parquet files
con = Workspace.open(sys.argv[1], read_only=True, create=False).con
for table in ("events", "rejected_events", "journeys", "journey_steps", "quarantine"):
    print(table, con.execute(f"SELECT count(*), sum(hash(columns(*))::HUGEINT) FROM {table}").fetchall())
PY
  rm -rf "$ws"
}
dump demo "$root/fixtures/demo_events.jsonl" "$root/fixtures/demo.yaml"
dump dirty "$root/fixtures/dirty/events.jsonl" "$root/fixtures/dirty/journeygraph.yaml"
[ -f "$root/benchmarks/data/events_100k.parquet" ] && dump b100k "$root/benchmarks/data/events_100k.parquet" "$root/benchmarks/data/bench.yaml"
dump bpi "" "$root/fixtures/bpi2012.yaml"
ls "$out"
