"""`journeygraph verify --bundle B.json --narrative TEXT_OR_FILE`: anyone can re-check any text.

The bundle file may be a bare bundle, a stored insight payload, `trace
--format json` output or the file `journeygraph trace ID --bundle-out FILE`
writes (anything with a `bundle` key). The narrative argument is
a file path or literal text; either may hold the narrative exactly as the feed
prints it (no markers: each number is resolved against the whole bundle),
plain text with `[f:ID]` citation markers, or the structured JSON form (see
narrator/checker.py). Prints one line
per failed rule with its offending span; returns 0 when faithful, 1 when not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from narrator.checker import CheckResult, check
from narrator.grounding import grounding_issues
from ontology.errors import NarrationError


def load_bundle(path: str | Path) -> dict[str, Any]:
    """Read a bundle (or an object holding one under `bundle`) from a JSON file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NarrationError(f"cannot read bundle file {p}: {exc.strerror}; write one with "
                             "`journeygraph trace INSIGHT_ID --bundle-out FILE`") from exc
    except json.JSONDecodeError as exc:
        raise NarrationError(f"{p} line {exc.lineno}: not JSON ({exc.msg}); pass a bundle JSON file") from exc
    if isinstance(data, dict) and isinstance(data.get("bundle"), dict):
        data = data["bundle"]
    if isinstance(data, dict) and data.get("kind") == "ask" and data.get("facts"):
        return data  # an `ask` answer's bundle: the question and the facts it cites
    if not isinstance(data, dict) or "finding" not in data or not data.get("facts"):
        raise NarrationError(f"{p}: no fact bundle found (need keys finding and facts); "
                             "write one with `journeygraph trace INSIGHT_ID --bundle-out FILE` (ids: `journeygraph feed --format json`)")
    return data


def load_narrative(arg: str) -> dict[str, Any] | str:
    """A path or literal text; JSON with `sentences` (or a `narrative` object holding them) is structured."""
    text = arg
    try:
        candidate = Path(arg)
        if len(arg) < 4096 and "\n" not in arg and candidate.is_file():
            text = candidate.read_text(encoding="utf-8")
    except OSError:
        pass
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            return text
        if isinstance(data, dict) and isinstance(data.get("narrative"), dict):
            data = data["narrative"]
        if isinstance(data, dict) and "sentences" in data:
            return data
    return text


def report(result: CheckResult, out: TextIO) -> None:
    for f in result.failures:
        span = f" «{f.span}»" if f.span else ""
        print(f"FAIL {f.rule}:{span} {f.message}", file=out)
    for w in result.warnings:
        print(f"warn {w.rule}: «{w.span}» {w.message}", file=out)
    verdict = "faithful" if result.ok else f"NOT faithful ({len(result.failures)} failure(s))"
    print(f"{verdict}; {result.numbers_checked} number(s) checked", file=out)


def run_verify(bundle_path: str | Path, narrative: str, out: TextIO | None = None) -> int:
    """The CLI entry: 0 faithful, 1 not. Grounding problems of the bundle are reported as failures too."""
    out = out or sys.stdout
    bundle = load_bundle(bundle_path)
    if bundle.get("kind") == "ask":
        return _verify_answer(bundle, narrative, out)
    for issue in grounding_issues(bundle, min_n=0):
        print(f"FAIL GROUNDING {issue.rule}: «{issue.where}» {issue.message}", file=out)
    grounded = not grounding_issues(bundle, min_n=0)
    result = check(bundle, load_narrative(narrative))
    report(result, out)
    return 0 if result.ok and grounded else 1


def _verify_answer(bundle: dict[str, Any], narrative: str, out: TextIO) -> int:
    """An `ask` answer: the checker without the rules that belong to a finding's narrative (narrator.ask)."""
    from narrator.ask import verify_answer

    result = verify_answer(bundle, load_narrative(narrative))
    for f in result["failures"]:
        span = f" «{f['span']}»" if f.get("span") else ""
        print(f"FAIL {f['rule']}:{span} {f['message']}", file=out)
    verdict = "faithful" if result["ok"] else f"NOT faithful ({len(result['failures'])} failure(s))"
    print(f"{verdict}; {result.get('numbers_checked', 0)} number(s) checked", file=out)
    return 0 if result["ok"] else 1
