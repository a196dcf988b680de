"""A third party adds a detector through an entry point, without editing this repository.

The extension is a real installed distribution as far as importlib.metadata can tell: a module
and a `.dist-info` folder with `entry_points.txt` on PYTHONPATH, exactly what `pip install`
leaves behind. The README's example detector is the one installed here.
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
    (meta / "entry_points.txt").write_text("[journeygraph.detectors]\nlong_stay = weekend_ext:LongStay\n")


def cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "JOURNEYGRAPH_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "engine.app.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)


def q_values(site: Path, ws: Path) -> dict[str, float]:
    run = cli(site, "demo", "-w", str(ws), "--format", "json")
    assert run.returncode == 0, run.stderr
    feed = json.loads(cli(site, "feed", "-w", str(ws), "--format", "json").stdout)
    return {_claim(item["finding"]): item["finding"]["evidence"]["q_value"] for item in feed}


def _claim(f: dict) -> tuple:
    """What a finding claims (its id also hashes its q-value, which is what changes here)."""
    return f["type"], f["subject"], f["predicate"], f["object"], f.get("segment"), f.get("release")


def test_entry_point_detector_is_listed_and_its_tests_count(tmp_path: Path) -> None:
    site, bare = tmp_path / "site", tmp_path / "bare"
    site.mkdir()
    bare.mkdir()
    install_extension(site)
    listed = cli(site, "detectors", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["long_stay"]["thresholds"] == {"min_visits_mean": 3.0, "min_n": 50, "scopes": ["all"]}
    assert "activation_driver" in rows  # the built-ins are still there
    assert "long_stay" not in {row["name"] for row in json.loads(cli(bare, "detectors", "--format", "json").stdout)}

    # The extension ran: its tests join the structure family's Benjamini-Hochberg correction, so the
    # same findings come out with other q-values than without it.
    with_ext, without = q_values(site, tmp_path / "ws1"), q_values(bare, tmp_path / "ws2")
    shared = with_ext.keys() & without.keys()
    assert shared
    assert any(with_ext[k] != without[k] for k in shared)
