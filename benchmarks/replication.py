"""Do High findings replicate? Split the actors into two random halves and compare the halves' findings.

    python benchmarks/replication.py -c fixtures/bpi2012.yaml -o results/replication_bpi.json
    python benchmarks/replication.py -c fixtures/demo.yaml --seed 7

Method. Every actor (the user id, or the case of an XES log; anonymous ids
are followed to the user id their alias event names) goes to half A or half B
by a seeded hash, so the split is deterministic. Each half is written as a
JSONL event file and run through the whole pipeline (`python -m engine.cli
run`, with the config's `source` pointed at the half) into its own workspace.
The stored snapshots of each half are then run through the detectors in this
process. A finding *replicates* when the other half holds a finding with the
same type, journey, subject, predicate, object, segment, release and snapshot
scope, and for period snapshots the same window (snapshot ids inside objects
are compared by their window; all-data windows end at each half's own events).
The rate is reported per confidence label, both directions pooled (A's
findings checked in B and B's in A), and per finding type for High.

Output: one JSON document (stdout, or -o FILE) with the rates, the counts they
rest on, and per finding the features the confidence model sees, so a new
calibration can be checked without rerunning.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def actor_key(event: dict[str, Any], aliases: dict[str, str]) -> str:
    """The person an event belongs to: user id, else the user its anonymous id was aliased to, else the anonymous id."""
    user = event.get("user_id") or event.get("actor_id")
    if user:
        return str(user)
    anon = str(event.get("anonymous_id") or "")
    return aliases.get(anon, anon)


def half_of(key: str, seed: int) -> int:
    return hashlib.sha256(f"{seed}|{key}".encode()).digest()[0] & 1


def events(source: Path) -> Iterator[dict[str, Any]]:
    if source.name.endswith((".xes", ".xes.gz")):
        from engine.xes import iter_events

        for doc in iter_events(source):
            yield json.loads(doc)
        return
    with source.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def split(source: Path, out_dir: Path, seed: int) -> tuple[Path, Path, Counter[int]]:
    """Write half A and half B of the events as JSONL; returns their paths and actors per half."""
    aliases = {str(e["anonymous_id"]): str(e["user_id"]) for e in events(source)
               if e.get("anonymous_id") and e.get("user_id")}
    paths = (out_dir / "half_a.jsonl", out_dir / "half_b.jsonl")
    actors: dict[int, set[str]] = {0: set(), 1: set()}
    with paths[0].open("w", encoding="utf-8") as a, paths[1].open("w", encoding="utf-8") as b:
        for e in events(source):
            key = actor_key(e, aliases)
            side = half_of(key, seed)
            actors[side].add(key)
            (a, b)[side].write(json.dumps(e, sort_keys=True) + "\n")
    return paths[0], paths[1], Counter({k: len(v) for k, v in actors.items()})


def run_half(config: Path, events_path: Path, workspace: Path) -> None:
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["source"] = str(events_path)
    raw.setdefault("narrator", {})["backend"] = "template"
    half_cfg = workspace.with_suffix(".yaml")
    half_cfg.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "engine.cli", "run", "-c", str(half_cfg), "-w", str(workspace)],
                   check=True, env=env, cwd=str(config.parent), stdout=subprocess.DEVNULL)


def half_findings(config: Path, workspace: Path) -> tuple[list[Any], dict[str, tuple]]:
    """The detectors' findings on a half's stored snapshots, and snapshot id → (scope, window, segment, release)."""
    from detectors.runner import run_detectors
    from engine.config import load_config
    from engine.snapshot_store import list_snapshots, load_snapshot
    from engine.workspace import Workspace

    ws = Workspace.open(str(workspace), create=False)
    try:
        rows = list_snapshots(ws.con)
        snaps = [load_snapshot(ws.con, r["snapshot_id"]) for r in rows]
    finally:
        ws.close()
    where = {r["snapshot_id"]: (r["scope"], r["window_start"], r["window_end"], r["segment_key"],
                                r["segment_value"], r["release"]) for r in rows}
    return list(run_detectors(snaps, load_config(config)).findings), where


def fact_key(f: Any, where: dict[str, tuple]) -> tuple:
    obj = f.object
    if obj.startswith("snapshot:"):
        obj = "snapshot:" + "|".join(str(x) for x in where.get(obj.split(":", 1)[1], ("?",)))
    scope, start, end = where[f.snapshot_id][:3]
    if scope != "period":  # all-data and segment windows end at each half's own first and last event
        start = end = ""
    return (f.type, f.journey, f.subject, f.predicate, obj, f.segment or "", f.release or "", scope, start, end)


def compare(mine: list[Any], where_mine: dict, theirs: list[Any], where_theirs: dict) -> list[dict[str, Any]]:
    from detectors.stats import z_from_p

    other = {fact_key(f, where_theirs) for f in theirs}
    return [{"type": f.type, "label": f.confidence_label, "confidence": f.confidence, "z": z_from_p(f.p_value),
             "n": f.n, "effect": f.effect, "q": f.q_value, "scope": where_mine[f.snapshot_id][0],
             "replicated": fact_key(f, where_mine) in other} for f in mine]


def rates(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in ("High", "Medium", "Low"):
        sub = [r for r in rows if r["label"] == label]
        out[label] = {"findings": len(sub), "replicated": sum(r["replicated"] for r in sub),
                      "rate": round(sum(r["replicated"] for r in sub) / len(sub), 4) if sub else None}
    high = [r for r in rows if r["label"] == "High"]
    out["High_by_type"] = {t: {"findings": len(g), "rate": round(sum(r["replicated"] for r in g) / len(g), 4)}
                           for t in sorted({r["type"] for r in high})
                           for g in [[r for r in high if r["type"] == t]]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("-o", "--out", type=Path)
    ap.add_argument("--keep", type=Path, help="work directory to keep (default: a temporary one)")
    args = ap.parse_args(argv)
    config = args.config.resolve()
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    source = (config.parent / raw["source"]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        a_path, b_path, actors = split(source, work, args.seed)
        halves = []
        for name, path in (("a", a_path), ("b", b_path)):
            if not (work / f"ws_{name}").exists():
                run_half(config, path, work / f"ws_{name}")
            halves.append(half_findings(config, work / f"ws_{name}"))
    (fa, wa), (fb, wb) = halves
    rows = compare(fa, wa, fb, wb) + compare(fb, wb, fa, wa)
    report = {"config": str(args.config), "seed": args.seed, "actors": {"a": actors[0], "b": actors[1]},
              "findings": {"a": len(fa), "b": len(fb)}, "rates": rates(rows), "rows": rows}
    text = json.dumps(report, indent=1, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    print(json.dumps({"config": str(args.config), **report["rates"]}, sort_keys=True), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
