"""Every narrative in the top 20 of a real workspace passes `verify` exactly as the feed prints it,
and every mutation of it (swapped, moved, sign-flipped numbers, flipped direction, wrong
denominator, wrong unit) is rejected.

Parametrized over workspaces built here through the CLI: the demo fixture, the paper's Figure 2
chain, the committed App in the Air sample (explicit passed / lost outcomes) and, when
../shared/datasets is beside the clone (CI), BPI 2012 and the whole App in the Air file; more configs
can be added with JOURNEYGRAPH_FAITHFULNESS_CONFIGS=path/a.yaml:path/b.yaml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from mutations import MUTATIONS

from narrator.checker import Narrative, check

ROOT = Path(__file__).resolve().parents[2]
TOP = 20
PAPER_JOURNEYS = 6000


def _cli(*args: str) -> str:
    env = {**os.environ, "JOURNEYGRAPH_NO_PROGRESS": "1"}
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "NEO4J_URI"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-m", "engine.app.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=900)
    assert proc.returncode == 0, f"journeygraph {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


def _paper_config(tmp: Path) -> Path:
    from fixtures import paper_chain

    events = paper_chain.simulate(PAPER_JOURNEYS, 7)
    (tmp / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    config = tmp / "journeygraph.yaml"
    config.write_text(yaml.safe_dump(paper_chain.config_dict()), encoding="utf-8")
    return config


DATASETS = ROOT.parent / "shared" / "datasets"
AITA_SAMPLE = ROOT / "fixtures" / "real" / "appintheair_train_first_1000_users.csv"
AITA_FULL = DATASETS / "appintheair_onboarding" / "train.csv"
BPI = DATASETS / "bpi2012_loan_applications" / "BPI_Challenge_2012.xes.gz"


def _aita_config(tmp: Path, source: Path) -> Path:
    """App in the Air as its Firebase export is, with the outcomes the dataset defines (passed, lost)."""
    config = tmp / "aita.yaml"
    config.write_text(yaml.safe_dump({
        "source": str(source),
        "normalize": {"bots": {"user_agent_patterns": [], "max_events_per_minute": 100000}},
        "journeys": {"onboarding": {"level": "raw", "start": "onboarding_welcome_screen", "conversion": "passed",
                                    "outcomes": {"passed": "event_name = 'passed'", "lost": "event_name = 'lost'"},
                                    "window": "1h"}},
        "snapshots": {"period": "6h"}, "narrator": {"backend": "template"}}), encoding="utf-8")
    return config


def _configs() -> list[str]:
    extra = [p for p in os.environ.get("JOURNEYGRAPH_FAITHFULNESS_CONFIGS", "").split(os.pathsep) if p]
    real = [name for name, path in (("bpi2012", BPI), ("aita_full", AITA_FULL)) if path.exists()]
    return ["demo", "paper_chain", "aita_sample", *real, *extra]


@pytest.fixture(scope="module", params=_configs())
def workspace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp(Path(request.param).stem)
    config = {"demo": lambda: ROOT / "fixtures" / "demo.yaml",
              "paper_chain": lambda: _paper_config(tmp),
              "aita_sample": lambda: _aita_config(tmp, AITA_SAMPLE),
              "aita_full": lambda: _aita_config(tmp, AITA_FULL),
              "bpi2012": lambda: ROOT / "fixtures" / "bpi2012.yaml"}.get(request.param, lambda: Path(request.param))()
    _cli("run", "-c", str(config), "-w", str(tmp / "ws"), "--format", "json")
    return tmp / "ws"


@pytest.fixture(scope="module")
def items(workspace: Path) -> list[dict[str, Any]]:
    """The top items with each one's bundle and its narrative exactly as the text feed prints it."""
    feed = json.loads(_cli("feed", "-w", str(workspace), "--limit", str(TOP), "--format", "json"))
    items = feed["items"] if isinstance(feed, dict) else feed
    printed = _printed_narratives(_cli("feed", "-w", str(workspace), "--limit", str(TOP)))
    from engine.app import views

    out = []
    for item in items:
        insight = views.insight(str(workspace), item["insight_id"])
        assert insight is not None and insight["bundle"], item["insight_id"]
        out.append({**item, "bundle": insight["bundle"], "printed": printed[item["rank"]]})
    return out


def _printed_narratives(text: str) -> dict[int, str]:
    """The text feed's blocks: rank line, stats line, then the wrapped narrative (joined back into one line)."""
    out = {}
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        head = lines[0].split(".", 1)[0].strip()
        if not head.isdigit():  # the detection-power footer, not an insight
            continue
        rank = int(head)
        out[rank] = " ".join(line.strip() for line in lines[2:])
    return out


def test_the_feed_has_items_to_check(items: list[dict[str, Any]]) -> None:
    assert len(items) >= 5
    assert all(item["printed"] for item in items)


def test_every_narrative_passes_verify_exactly_as_printed(items: list[dict[str, Any]]) -> None:
    for item in items:
        printed = check(item["bundle"], item["printed"])
        assert printed.ok, (item["rank"], item["printed"], printed.failures)
        assert printed.numbers_checked > 0
        cited = check(item["bundle"], Narrative.from_obj(item["narrative"]).marked_text())
        assert cited.ok, (item["rank"], cited.failures)


def test_every_mutation_is_rejected(items: list[dict[str, Any]]) -> None:
    tried: Counter[str] = Counter()
    accepted = []
    for item in items:
        for name, mutate in MUTATIONS.items():
            for description, mutated in mutate(item["printed"], item["bundle"]):
                tried[name] += 1
                if check(item["bundle"], mutated).ok:
                    accepted.append((item["rank"], name, description))
    assert accepted == []
    # every kind of mutation was actually exercised on this workspace's narratives
    assert {k for k, v in tried.items() if v > 0} >= {"swapped numbers", "moved numbers", "flipped direction",
                                                      "wrong denominator", "wrong unit", "sign flip"}


def test_cli_trace_bundle_out_and_verify_on_printed_text(workspace: Path, items: list[dict[str, Any]],
                                                         tmp_path: Path) -> None:
    item = items[0]
    bundle_file = tmp_path / "bundle.json"
    _cli("trace", item["insight_id"], "-w", str(workspace), "--bundle-out", str(bundle_file))
    assert json.loads(bundle_file.read_text())["bundle"]["bundle_hash"] == item["bundle"]["bundle_hash"]
    out = _cli("verify", "--bundle", str(bundle_file), "--narrative", item["printed"])
    assert out.strip().splitlines()[-1].startswith("faithful")
    flipped = next(m for name in ("flipped direction", "swapped numbers", "wrong unit", "sign flip")
                   for _, m in MUTATIONS[name](item["printed"], item["bundle"]))
    env = {**os.environ, "JOURNEYGRAPH_NO_PROGRESS": "1"}
    proc = subprocess.run([sys.executable, "-m", "engine.app.cli", "verify", "--bundle", str(bundle_file),
                           "--narrative", flipped], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 1 and "NOT faithful" in proc.stdout
