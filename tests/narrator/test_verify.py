"""`journeygraph verify` entry: exit 0 faithful / 1 not, each failed rule printed with its span."""

from __future__ import annotations

import io
import json

import pytest
from narrator_factories import make_bundle

from narrator import template
from narrator.narrate import narrate_bundle
from narrator.verify import run_verify
from ontology.errors import NarrationError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    bundle = make_bundle("activation_driver")
    narrative = template.narrate(bundle)
    (root / "bundle.json").write_text(json.dumps(bundle))
    (root / "good.txt").write_text(narrative.marked_text())
    (root / "altered.txt").write_text(narrative.marked_text().replace("57.7%", "60%"))
    (root / "good.json").write_text(json.dumps(narrative.to_dict()))
    (root / "trace.json").write_text(json.dumps({"bundle": bundle, "narrative": narrative.to_dict()}))
    return root


def _run(bundle_path, narrative):
    out = io.StringIO()
    code = run_verify(bundle_path, str(narrative), out)
    return code, out.getvalue()


@pytest.mark.parametrize("bundle_name, narrative_name", [
    ("bundle.json", "good.txt"), ("bundle.json", "good.json"), ("trace.json", "trace.json"),
], ids=["marked-text-file", "structured-json-file", "trace-output"])
def test_faithful_inputs_exit_0(files, bundle_name, narrative_name):
    code, out = _run(files / bundle_name, files / narrative_name)
    assert code == 0, out
    assert out.strip().splitlines()[-1].startswith("faithful;")


def test_altered_number_exits_1_and_names_the_span(files):
    code, out = _run(files / "bundle.json", files / "altered.txt")
    assert code == 1
    assert "FAIL NUM_UNSUPPORTED: «60%»" in out
    assert "NOT faithful (1 failure(s))" in out


def test_literal_text_argument(files):
    code, out = _run(files / "bundle.json", "Conversion doubled because of onboarding.")
    assert code == 1
    for rule in ("NUM_UNSUPPORTED", "CAUSAL", "N_MISSING", "CONFIDENCE_MISSING",
                 "RECOMMENDATION_MISSING"):
        assert f"FAIL {rule}" in out


def test_tampered_bundle_fails_grounding(files, tmp_path):
    bundle = json.loads((files / "bundle.json").read_text())
    bundle["finding"]["evidence"]["lift"] = 9.0
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    code, out = _run(tmp_path / "b.json", files / "good.txt")
    assert code == 1
    assert "FAIL GROUNDING BUNDLE_HASH" in out and "LIFT_INCONSISTENT" in out


def test_stored_insight_payload_verifies(files):
    bundle = make_bundle("repeated_visit")
    payload = narrate_bundle(bundle).to_dict()
    path = files / "insight.json"
    path.write_text(json.dumps(payload))
    assert _run(path, path)[0] == 0


@pytest.mark.parametrize("content, match", [
    (None, "cannot read bundle file"), ("{not json", "not JSON"), ('{"x": 1}', "no fact bundle"),
], ids=["missing", "not-json", "no-bundle"])
def test_bad_bundle_file_is_a_narration_error(tmp_path, content, match):
    path = tmp_path / "b.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(NarrationError, match=match):
        run_verify(path, "text", io.StringIO())


def test_the_cli_verifies_an_ask_answer_and_catches_a_changed_number(tmp_path_factory, tmp_path, capsys) -> None:
    """`journeygraph verify --bundle` takes an `ask` answer's bundle too: the printed answer passes, an altered number fails."""
    import json
    import re

    from demo_workspace import open_demo

    from narrator.ask import ask
    from narrator.verify import run_verify

    with open_demo(tmp_path_factory) as (ws, cfg, store):
        answer = ask("what is the overall conversion rate?", con=ws.con, store=store, cfg=cfg)
    assert answer["bundle"] and answer["sentences"]
    bundle_file = tmp_path / "ask.json"
    bundle_file.write_text(json.dumps({"bundle": answer["bundle"]}))
    text = " ".join(s["text"] for s in answer["sentences"])
    assert run_verify(bundle_file, text) == 0
    altered = re.sub(r"\d+(?:\.\d+)?%", "61.7%", text, count=1)
    assert altered != text and run_verify(bundle_file, altered) == 1
    assert "NOT faithful" in capsys.readouterr().out
