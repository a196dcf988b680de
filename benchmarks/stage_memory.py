"""Peak resident memory of `journeygraph run` per pipeline stage and per snapshot sub-stage (Linux).

    python benchmarks/stage_memory.py --events 10m [--format parquet] [--workspace DIR]

`bench_engine.py` gives the run's one peak (the child's ru_maxrss); this says where it is reached: a
thread samples /proc/self/status every 30 ms and files each sample under the stage running then (the
pipeline's "stage done" and engine.snapshot's debug marks say when one ends and the next begins).
Each line is the peak between the named mark and the next one ("after stage done: ingest" is normalise).
Sampling can miss a spike shorter than 30 ms, so the overall figure may sit a little under ru_maxrss.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"


def _rss_mb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


class _Stages(logging.Handler):
    """The stage running now (named by the mark that ended the previous one) and each stage's peak."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = ["start"]
        self.peak: dict[str, int] = {"start": 0}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()  # "stage done: ingest", "snapshot stage fetch: 0.5 s (cpu 0.4 s)"
        mark = message.split(":")[0] if message.startswith("snapshot stage") else message
        self.order.append(f"after {mark}")
        self.peak.setdefault(self.order[-1], 0)

    def sample(self) -> None:
        while True:
            now = self.order[-1]
            self.peak[now] = max(self.peak.get(now, 0), _rss_mb())
            time.sleep(0.03)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1m", help="stream label written by generate_streams.py")
    parser.add_argument("--format", default="parquet", choices=("parquet", "jsonl"))
    parser.add_argument("--workspace", help="workspace folder (default: a temporary one)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from engine.app import pipeline

    stages = _Stages()
    logging.getLogger("engine.snapshot").setLevel(logging.DEBUG)
    logging.getLogger("engine.app.pipeline").setLevel(logging.INFO)
    logging.getLogger().addHandler(stages)
    threading.Thread(target=stages.sample, daemon=True).start()
    source = DATA / f"events_{args.events}.{args.format}"
    with tempfile.TemporaryDirectory() as tmp:
        pipeline.run(str(source), str(DATA / "bench.yaml"), args.workspace or str(Path(tmp) / "ws"), quiet=True)
    for name in stages.order:
        print(f"{stages.peak.get(name, 0):7,d} MB  {name}")
    print(f"{max(stages.peak.values()):7,d} MB  overall (sampled)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
