"""``make figures`` cannot rot: ``benchmarks/figures.py`` in its quick mode, end to end.

The driver runs the real benchmark scripts (forecast leaderboard, predictive vs the HPA,
cost guard; not the API load, Prometheus and HPA-latency ones, which quick mode skips
with a note naming their command) in fresh processes on a tiny synthetic trace and
writes its pages and index into a temporary folder; the test checks that each page
names its command, the commit and the machine, and holds its table, and that the
1-minute step variant keeps the trace's volume. It takes ~30 s on 2 cores.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from models.traces import load_trace

_SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "figures.py"


def _figures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("figures", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["figures"] = module
    spec.loader.exec_module(module)
    return module


def test_step_variant_interpolates_to_one_minute(tmp_path: Path) -> None:
    figures = _figures()
    trace = figures.tiny_trace(tmp_path / "tiny.csv", days=2.0, step=1800)
    own, fine = figures.step_variants(trace, tmp_path / "v", days=1.5)
    a, b = load_trace(own), load_trace(fine)
    assert a.step_seconds == 1800 and b.step_seconds == 60
    assert len(a) == 72 and len(b) == 72 * 30
    assert b.series.index[0] == a.series.index[0]
    # linear interpolation of the rate keeps the volume, up to the two half-steps at the ends
    assert b.series.sum() == pytest.approx(a.series.sum(), rel=0.03)


@pytest.mark.timeout(120)
def test_quick_figures_write_every_page(tmp_path: Path) -> None:
    figures = _figures()
    trace = figures.tiny_trace(tmp_path / "tiny.csv", days=2.5)
    out, index = tmp_path / "pages", tmp_path / "benchmarks.md"
    argv = ["--quick", "--trace", str(trace), "--days", "1.5", "--workers", "2"]
    argv += ["--out", str(out), "--index", str(index), "--work", str(tmp_path / "work")]
    written = figures.main(argv)

    names = {p.name for p in written}
    assert names == {
        "forecasting.md",
        "simulator.md",
        "cost-guard.md",
        "controller.md",
        "api.md",
        "prometheus.md",
        "hpa.md",
    }
    head = figures.commit().split()[0]
    tables = {
        "forecasting.md": "| tiny | ",
        "simulator.md": "| tiny | ",
        "cost-guard.md": "allocate, budget binding",
    }
    for path in written:
        text = path.read_text()
        assert "Written by `make figures`" in text
        assert "- command: `python benchmarks/figures.py --quick" in text
        assert f"- commit: {head}" in text
        assert "- machine: " in text and "- scope: " in text
        assert "Did not finish" not in text, text
        if path.name in tables:
            assert tables[path.name] in text, text
            assert "```\npython benchmarks/" in text  # the script behind the table
    # The slow pages (wrk, a real Prometheus, the latency model) are not run in quick
    # mode, but their pages still say so and name the command that would.
    for name, cmd in (
        ("api.md", "benchmarks/api_load.py"),
        ("prometheus.md", "benchmarks/prometheus_source.py"),
        ("hpa.md", "benchmarks/hpa_latency.py"),
    ):
        text = (out / name).read_text()
        assert "## Not regenerated this run" in text and cmd in text, text
    forecasting = (out / "forecasting.md").read_text()
    assert "| tiny_2d_interp_1min | " in forecasting
    simulator = (out / "simulator.md").read_text()
    assert "| tiny_2d_interp_1min | " in simulator
    assert "gap closed" in simulator
    summary = index.read_text()
    for name in names:
        assert f"pages/{name}" in summary
    assert "tiny" in summary  # the headlines are copied from the pages
