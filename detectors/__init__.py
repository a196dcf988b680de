"""Deterministic detectors: snapshots in, findings and facts out.

    from detectors.runner import run_detectors
    run = run_detectors(snapshots, cfg)      # DetectorRun(findings, facts, tests)

Pure functions of the snapshots: no I/O, no clock, no randomness, sorted
output. One module per detector, registered with `detectors.registry.register`
(built-ins exactly like extensions); thresholds and their documented defaults
in `detectors.defaults`; shared tests in `detectors.stats`; Benjamini-Hochberg
families and confidence in `detectors.runner` / `detectors.confidence`;
findings → facts in `detectors.facts`.
"""
