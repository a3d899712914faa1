"""The hey scenario runs the real hey (Debian's package) after k6 against the mock and a gateway: its output is
kept as printed, parsed, and shown in the report beside k6's figures."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest

from analysis.hey import HeyOutputError, parse_hey
from analysis.report import build_report
from schema.results import read_outcomes
from tests.helpers import make_runner

pytestmark = pytest.mark.slow
REQUESTS = 2000


@pytest.fixture(scope="module")
def hey_run(tmp_path_factory, tools_ready):
    if shutil.which("hey") is None:
        pytest.fail("hey is not installed: `aigw-bench setup` installs Debian's hey (apt-get install hey)")
    runner = make_runner(None, ["direct", "nginx"], tmp_path_factory.mktemp("results"), scenario="hey",
                         duration="30s", warmup="1s", vus=50)
    m = runner.plan.measurement
    runner.plan.measurement = dataclasses.replace(m, params=m.params.model_copy(update={"iterations": REQUESTS}))
    run_dir = runner.run()
    return {"run_dir": run_dir, "report": build_report(run_dir),
            "outcomes": {o.target: o for o in read_outcomes(run_dir)}}


@pytest.mark.parametrize("name", ["direct", "nginx"])
def test_hey_ran_with_the_published_flags_after_k6(hey_run, name):
    step = hey_run["outcomes"][name].steps["hey"]
    assert step.status == "ok", step.reason
    assert step.data["command"].startswith(f"hey -n {REQUESTS} -c 50 -m POST -T application/json -D body.json")
    output = (hey_run["run_dir"] / "targets" / name / "r1" / "hey" / "hey.txt").read_text()
    parsed = parse_hey(output)
    assert parsed["statuses"] == {200: REQUESTS} and parsed["errors"] == 0
    # hey prints seconds with four decimals: the mock's fastest answers read 0.0000 s.
    assert parsed["rps"] > 100 and 0 <= parsed["fastest_ms"] <= parsed["p50_ms"] <= parsed["p99_ms"] <= \
        parsed["slowest_ms"] and parsed["slowest_ms"] > 0
    # The body hey sent is the scenario's ("Hi", nothing else), as k6 sent it.
    body = (hey_run["run_dir"] / "targets" / name / "r1" / "hey" / "body.json").read_text()
    assert json.loads(body) == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def test_the_report_shows_heys_figures_beside_k6s(hey_run):
    report = hey_run["report"]
    hey = report.scenario.hey.set_index("target")
    md = report.paths["markdown"].read_text()
    assert "## hey itself, beside k6" in md
    for name in ("direct", "nginx"):
        row = next(line for line in md[md.index("## hey itself"):].splitlines() if line.startswith(f"| {name} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        k6 = report.table.set_index("target").loc[name]
        assert cells[1] == f"{k6['rps']:,.0f}" and cells[2] == f"{hey.loc[name, 'rps']:,.0f}"
        assert cells[10] == f"{REQUESTS:,} x 200"
    assert "<h2>hey itself, beside k6</h2>" in report.paths["html"].read_text()


def test_a_cut_short_output_is_named(hey_run):
    output = (hey_run["run_dir"] / "targets" / "nginx" / "r1" / "hey" / "hey.txt").read_text()
    with pytest.raises(HeyOutputError, match=r"hey\.txt: no 'Summary:'"):
        parse_hey(output[: output.index("Summary:")], "hey.txt")
    with pytest.raises(HeyOutputError, match="no Requests/sec"):
        parse_hey(re.sub(r"Requests/sec:.*", "", output), "hey.txt")
