"""The scorecard on a crafted suite run: the first table of report.md and report.html and the terminal's last;
one row per measured target with its figures and validity marks; a target that cannot run is one line; the
rig's own frontier never reads below a target's; the header names the suite and the report lists its steps;
markdown does not leak into the HTML."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from aigw_bench.cli import main
from analysis.report import build_report
from analysis.validity import RULE_MARKS, RULE_TITLES
from tests.crafted import RIG, SuiteTarget, make_suite_run

pytestmark = pytest.mark.pure


# The rig's own search: nothing met 10 ms (its lowest rate, 1,446, failed), 50 ms found, 250 ms out of steps.
def _bound(bound_ms: float, capacity: float | None, failing: float, resolved: bool) -> dict:
    return {"bound_ms": bound_ms, "capacity_rps": capacity, "rig_bound": False, "failing_rps": failing,
            "p99_at_capacity_ms": None if capacity is None else bound_ms * 0.8, "resolved": resolved,
            "note": None, "passed_above_rps": []}


RIG_FRONTIER = {**RIG, "frontier": {"probes": [], "bounds": [
    _bound(10.0, None, 1446, False), _bound(50.0, 2000, 2200, True), _bound(250.0, 2057, 2313, False)]}}
TARGETS = {
    "direct": SuiteTarget(role="baseline"),
    "floor": SuiteTarget(role="floor", added_ms=0.1, capacity={10: 900.0, 50: 1500.0, 250: 1500.0},
                         rig_bound={50.0, 250.0}, cpu_ms=0.2, rss_mib=15),
    "fastgw": SuiteTarget(added_ms=2.0, capacity={10: 150.0, 50: 400.0, 250: 500.0}, cpu_ms=2.5,
                          unstable={250.0: [640.0]}, gap_offset_ms=-0.6),
    "slowgw": SuiteTarget(added_ms=8.0, capacity={10: None, 50: 80.0, 250: 120.0}, cpu_ms=9.0, rss_mib=300,
                          added_ttft_ms=40.0, unstable={50.0: [95.0, 110.0]}, gap_offset_ms=0.05),
    "cloudonly": SuiteTarget(status="not_runnable"),
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return build_report(make_suite_run(tmp_path_factory.mktemp("card"), TARGETS, rig=RIG_FRONTIER, repeats=2))


def rows(report) -> dict[str, list[str]]:
    return {row[0].split()[0]: row for row in report.scorecard.table.rows}


def test_the_scorecard_is_the_first_table_of_both_reports(report):
    md = report.paths["markdown"].read_text()
    sections = re.findall(r"^## (.+)$", md, flags=re.M)
    assert sections[0] == "Scorecard: suite default" and sections[1] == "Headline"
    assert md.index("| target | +p50 (95% CI) |") < md.index("## Headline")
    html = report.paths["html"].read_text()
    assert html.index('<section id="scorecard">') < html.index("<table") < html.index('id="headline"')


def test_one_row_per_measured_target_with_its_figures_and_marks(report):
    card = rows(report)
    assert set(card) == {"direct", "floor", "fastgw", "slowgw"}
    assert card["direct"][0] == "direct (nginx + Lua (ngx_lua) 1.22.1, A/A control)"
    assert card["direct"][3] == "the rig: 2,000"
    fast = card["fastgw"]
    assert re.fullmatch(r"2\.\d\d ms \([12]\.\d\d to 2\.\d\d\)", fast[1]), fast[1]
    # The capacity with the range its search put it in: it passed 400 req/s and failed 440.
    assert fast[3] == "400 (400–440)" and fast[4] == "2.50" and fast[5] == "200"
    assert re.fullmatch(r"\+[4-6]\.\d ms \(\+[3-6]\.\d to \+[5-7]\.\d\)", fast[6]), fast[6]
    assert card["floor"][3] == ">= 1,500 (rig-bound)" and "rig-bound" in card["floor"][7]
    assert card["slowgw"][3] == "80 (80–88), unstable to 110" and "capacity unstable" in card["slowgw"][7]
    assert report.scorecard.table.headers[3] == "capacity req/s, p99 <= 50 ms"


def test_a_target_that_cannot_run_is_one_line(report):
    assert report.scorecard.not_run == ["cloudonly: not runnable here (crafted failure)"]
    md = report.paths["markdown"].read_text()
    assert md.count("**cloudonly**") == 1 and "**cloudonly** (every repeat): not runnable here" in md
    assert report.paths["html"].read_text().count("<b>cloudonly</b>") == 1


def test_the_rigs_frontier_never_reads_below_a_targets(report):
    md = report.paths["markdown"].read_text()
    row = next(line for line in md.splitlines() if line.startswith("| direct (the rig) |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "not found (its lowest rate tried, 1,446, failed; floor sustained 900): ran out of steps"
    assert cells[2] == "2,000"
    assert cells[3] == "2,057–2,313: ran out of steps"


def test_an_unstable_capacity_at_any_bound_has_its_finding(report):
    unstable = {(f.target, re.search(r"p99 <= (\d+) ms", f.message)[1]) for f in report.findings
                if f.rule == "capacity_unstable"}
    assert unstable == {("fastgw", "250"), ("slowgw", "50")}


def test_every_rule_has_a_mark():
    assert set(RULE_MARKS) == set(RULE_TITLES)


def test_header_names_the_suite_and_the_report_lists_its_steps(report):
    html = report.paths["html"].read_text()
    assert "suite <b>default</b> (local sizes)" in html and "scenario <b>seed</b>" not in html
    md = report.paths["markdown"].read_text()
    assert "## The suite's steps: default (local sizes)" in md
    assert "| capacity | bounds 10, 50, 250 ms; default_bound 50 ms |" in md
    assert "| efficiency | rate 50 req/s |" in md


def test_markdown_does_not_leak_into_the_html(report):
    html = report.paths["html"].read_text()
    text = re.sub(r"<pre>.*?</pre>", "", html, flags=re.S)
    assert "`" not in text and "**" not in text
    assert "<code>--suite thorough</code>" in text and "Suite <code>default</code>" in text


def test_the_terminal_ends_with_the_scorecard(report):
    out = CliRunner().invoke(main, ["report", str(report.run.run_dir)])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    start = lines.index("Scorecard: suite default")
    table = lines[start + 1:start + 2 + len(report.scorecard.table.rows)]
    assert table[0].split()[:2] == ["target", "+p50"]
    assert [line.split()[0] for line in table[1:]] == ["direct", "floor", "fastgw", "slowgw"]
    # Nothing but the not-run line and the report's paths after it.
    assert [line for line in lines[start + 2 + len(report.scorecard.table.rows):]
            if not line.startswith(("report", "  not measured here: cloudonly"))] == []


def test_a_first_token_held_back_gets_a_verdict_a_finding_and_a_headline(report):
    """slowgw adds 8 ms to a request and 40 to the first token: it holds the first token ~32 ms, more than the
    mock's 12.3 ms token gap; fastgw (2 ms and ~5 ms) relays it as it comes."""
    table = report.table.set_index("target")
    assert bool(table.loc["slowgw", "stream_holds_first_token"]) and not table.loc["fastgw", "stream_holds_first_token"]
    assert table.loc["slowgw", "stream_first_token_wait_ms"] == pytest.approx(32, abs=3)
    held = [f for f in report.findings if f.rule == "holdback"]
    assert [f.target for f in held] == ["slowgw"] and "waits 3" in held[0].message
    assert "first token held" in rows(report)["slowgw"][7]
    head = next(h.text for h in report.headlines if h.text.startswith("slowgw "))
    assert "streaming holds the first token back: +39." in head and "every chunk arrived" in head
    assert any(h.text.startswith("fastgw delays the first streamed token less than slowgw") for h in report.headlines)


def test_negative_and_tiny_differences_are_read_in_words(report):
    md = report.paths["markdown"].read_text()
    section = md[md.index("## Streaming"):].split("\n\n")[1]
    line = {row.split("|")[1].strip(): row for row in section.splitlines()[2:]}
    assert "gap: below direct, which a relay cannot cause" in line["fastgw"]  # -0.6 ms, interval below zero
    assert "gap: real but immaterial, under 1% of the mock's 12.3 ms" in line["slowgw"] or \
        "gap: noise, its 95% interval includes zero" in line["slowgw"]
    assert "A/A control: the mock against itself" in line["direct"]
    assert "the gap's: below direct" in next(h.text for h in report.headlines if h.text.startswith("fastgw "))
