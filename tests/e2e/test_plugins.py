"""A third party adds a detector and its kind through entry points, without editing this repository.

The extension is a real installed distribution as far as importlib.metadata can tell: a module
and a `.dist-info` folder with `entry_points.txt` on PYTHONPATH, exactly what `pip install`
leaves behind. The README's example detector, with its kind, is the one installed here: its
finding type is new, so the run, the feed, the narration and the faithfulness check all go
through what the one file declares.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- example-detector -->\n```python\n(.*?)```", text, re.S)
    assert match, "README has no example detector block"
    return match.group(1)


def install_extension(site: Path) -> None:
    (site / "weekend_ext.py").write_text(readme_example())
    meta = site / "weekend_ext-1.0.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: weekend-ext\nVersion: 1.0\n")
    (meta / "entry_points.txt").write_text("[journeygraph.detectors]\nlong_stay = weekend_ext:LongStay\n\n"
                                           "[journeygraph.kinds]\nlong_stay = weekend_ext:KIND\n")


def cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "JOURNEYGRAPH_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "engine.app.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)


def demo_feed(site: Path, ws: Path) -> list[dict]:
    run = cli(site, "demo", "-w", str(ws), "--format", "json")
    assert run.returncode == 0, run.stderr
    return json.loads(cli(site, "feed", "-w", str(ws), "--format", "json", "--limit", "1000").stdout)


def q_values(site: Path, ws: Path) -> dict[tuple, float]:
    """Every exported fact's q-value by what it claims (its id also hashes the q-value, which is what changes here)."""
    facts = json.loads(cli(site, "export", "-w", str(ws), "--format", "json").stdout)
    return {(f["subject"], f["predicate"], f["object"], f["valid_from"], f["provenance"]["detector"]): f["evidence"]["q_value"]
            for f in facts if "q_value" in f["evidence"]}


def test_entry_point_detector_is_listed_and_its_tests_count(tmp_path: Path) -> None:
    site, bare = tmp_path / "site", tmp_path / "bare"
    site.mkdir()
    bare.mkdir()
    install_extension(site)
    listed = cli(site, "detectors", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["long_stay"]["thresholds"] == {"min_visits_mean": 2.0, "min_n": 50}
    assert rows["long_stay"]["types"] == ["long_stay"]
    assert "activation_driver" in rows  # the built-ins are still there
    assert "long_stay" not in {row["name"] for row in json.loads(cli(bare, "detectors", "--format", "json").stdout)}

    # The extension ran: its tests join the structure family's Benjamini-Hochberg correction, so the
    # same findings come out with other q-values than without it.
    feed, bare_feed = demo_feed(site, tmp_path / "ws1"), demo_feed(bare, tmp_path / "ws2")
    with_ext, without = q_values(site, tmp_path / "ws1"), q_values(bare, tmp_path / "ws2")
    shared = with_ext.keys() & without.keys()
    assert shared
    assert any(with_ext[k] != without[k] for k in shared)

    # Its findings are narrated with its kind's plan and feed wording, and the narrative passes the checker.
    stays = [item for item in feed if item["finding"]["type"] == "long_stay"]
    assert stays and not any(item["finding"]["type"] == "long_stay" for item in bare_feed)
    item = stays[0]
    narrative = item["narrative"]
    assert narrative["sentences"][0]["text"].startswith("Journeys that reach ")
    assert re.search(r"average [\d.]+ visits to it \([\d,]+ journeys\)", narrative["sentences"][0]["text"])
    assert narrative["recommendation"]["text"].startswith("Investigate why journeys keep returning to ")
    bundle = tmp_path / "bundle.json"
    traced = cli(site, "trace", item["insight_id"], "-w", str(tmp_path / "ws1"), "--bundle-out", str(bundle))
    assert traced.returncode == 0, traced.stderr
    text = narrative["text"]
    verified = cli(site, "verify", "--bundle", str(bundle), "--narrative", text)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    moved = re.sub(r"average [\d.]+ visits", "average 9.99 visits", text)
    assert cli(site, "verify", "--bundle", str(bundle), "--narrative", moved).returncode == 1  # the check can fail
    shown = cli(site, "feed", "-w", str(tmp_path / "ws1"), "--format", "text", "--limit", "1000").stdout
    assert re.search(r"long_stay: state:\S+ is revisited in journey:activation\n\s+mean [\d.]+ visits", shown)  # its headline
