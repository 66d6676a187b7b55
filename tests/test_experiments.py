"""Every script in experiments/ still imports against today's code, and its ``--help`` answers without doing any
work (each parses its arguments first thing in ``main(argv)``), so a renamed module or option cannot leave one
broken unnoticed. Running them for real takes minutes to hours: that is not done here. The committed results they
wrote are read instead: the campaign curve's reports and logs, and the suite report of the shipped weights."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
SCRIPTS = sorted(EXPERIMENTS.glob("*.py"))


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"experiments_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_there_are_experiments():
    assert len(SCRIPTS) >= 10, SCRIPTS


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_experiment_imports_and_answers_help(path, capsys):
    module = load(path)
    assert callable(getattr(module, "main", None)), f"{path.name} has no main(argv)"
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: "), out


def test_campaign_compare_shows_every_step_and_a_dash_where_a_run_stopped(tmp_path, capsys):
    """A run capped earlier (item 5's wider preset stopped at its hour) must not hide the others' later steps."""
    module = load(EXPERIMENTS / "campaign_compare.py")
    for name, steps in {"A": (200, 400), "C": (200,)}.items():
        run = tmp_path / name
        run.mkdir()
        records = [{"step": s, "suite_gain": s / 1000, "suite_rows": {"set8": s / 500}} for s in steps]
        records.append({"step": 300, "stopped": "SIGTERM"})  # a stop carries no validation: not a row
        (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out_json = tmp_path / "table.json"
    module.main([str(tmp_path / "A"), str(tmp_path / "C"), "--json", str(out_json)])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines[1:]] == [["200", "+0.200", "+0.200"], ["400", "+0.400", "-"]]
    table = json.loads(out_json.read_text())
    assert table["suite_gain"] == {"200": {"A": 0.2, "C": 0.2}, "400": {"A": 0.4}}
    assert table["suite_rows"]["400"] == {"A": {"set8": 0.8}}


def test_campaign_curve_sums_each_process_of_a_run_once(tmp_path, monkeypatch):
    """Legacy logs (no ``run_seconds``): a record starts a new process when its seconds fell or rose too little
    for the steps between; logs with ``run_seconds`` give the run's time directly."""
    module = load(EXPERIMENTS / "campaign_curve.py")
    monkeypatch.setattr(module, "CAMPAIGN", tmp_path)
    logs = {
        # one process to 400 (1000 s), one to 600 (its seconds fell), one to 800 (rose 250 s over 200 steps)
        "legacy": [(200, 500.0), (400, 1000.0), (600, 400.0), (800, 650.0)],
        "new": [(200, 500.0, 500.0), (400, 100.0, 600.0)],
    }
    for name, rows in logs.items():
        (tmp_path / name).mkdir()
        lines = [{"step": r[0], "seconds": r[1]} | ({"run_seconds": r[2]} if len(r) > 2 else {}) for r in rows]
        (tmp_path / name / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert [module.seconds_to("legacy", s) for s in (200, 400, 600, 800)] == [500, 1000, 1400, 2050]
    assert module.seconds_to("legacy") == 2050 and module.seconds_to("new") == 600
    with pytest.raises(SystemExit, match="expected a record of step 300"):
        module.seconds_to("legacy", 300)
    assert module.total_hours() == pytest.approx(2650 / 3600)


def test_campaign_curve_last_doubling_interpolates_the_half_way_point():
    module = load(EXPERIMENTS / "campaign_curve.py")
    points = [{"hours": 0.0, "mean": 0.3}, {"hours": 2.0, "mean": 0.5}, {"hours": 4.0, "mean": 0.56}]
    half, end, added = module.last_doubling(points)
    assert (half, end) == (2.0, 4.0) and added == pytest.approx(0.06)
    half, end, added = module.last_doubling(points[:1] + points[2:])  # 2 h lies between 0 h and 4 h
    assert added == pytest.approx(0.56 - 0.43)
    assert module.last_doubling(points[2:]) is None  # nothing trained half as long to compare with


def test_campaign_curve_reads_every_committed_report_and_log(capsys):
    """The committed results name every checkpoint's report and every run's steps the curve uses."""
    module = load(EXPERIMENTS / "campaign_curve.py")
    module.main([])
    out = capsys.readouterr().out
    assert all(c.label in out for c in module.CHECKPOINTS) and "last doubling on the main line" in out


# Every default the package has shipped since the suite exists, oldest first: (label, sha256 of the weights
# file). A new default appends itself; the test below then holds it to the shipping rule against all of these.
EARLIER_DEFAULTS = (
    ("stage 3", "4e3bd61a8687"),
    ("stage 4b", "ab74729ce2c0"),
    ("run E, step 1400", "5efe9773e8e3"),
)


def test_the_shipped_weights_are_the_ones_scored_and_pass_the_shipping_rule():
    """The default weights (pahs_export/weights/pahs-t.safetensors) must be the file a committed suite report
    scored (matched by SHA-256), and that report must pass training.suite.shipping_problems against the default
    it replaced and every earlier one: swapping the weights without scoring them, or shipping a regression, fails
    here."""
    from pahs_export.weights import weights_source
    from training.suite import shipping_problems

    reports = {}
    for path in (EXPERIMENTS / "results").rglob("suite-*.json"):
        report = json.loads(path.read_text())
        reports.setdefault(report["weights"]["sha256"][:12], report)
    sha = weights_source()[1]["sha256"][:12]  # the default weights, hashed as a suite report records them
    assert sha in reports, f"no committed suite report scored the shipped weights (sha256 {sha}...)"
    earlier = {label: reports[digest] for label, digest in EARLIER_DEFAULTS}
    assert sha not in {digest for _, digest in EARLIER_DEFAULTS}, "the shipped weights are an earlier default's"
    previous = earlier[EARLIER_DEFAULTS[-1][0]]
    assert shipping_problems(reports[sha], previous, earlier) == []
