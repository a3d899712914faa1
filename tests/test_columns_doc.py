"""comparison.csv's and faults.csv's column dictionaries (docs/columns.md) against the real columns: every
column described once, in the file's order, with its unit in its name; counts whole; no added latency from a
closed loop."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from analysis.compare import COMPARISON_COLUMNS, INTEGER_COLUMNS, RATE_ADDED_COLUMNS
from analysis.faults import COLUMNS as FAULTS_COLUMNS
from analysis.report import build_report
from schema.base import REPO_DIR
from tests.crafted import SuiteTarget, Target, make_run, make_suite_run

pytestmark = pytest.mark.pure

DOC = REPO_DIR / "docs" / "columns.md"
ROW = re.compile(r"^\| `(?P<column>[a-z0-9_]+)` \| (?P<unit>[^|]+?) \| (?P<meaning>.+) \|$")
# Each unit and what a column of it must carry in its name.
UNIT_IN_NAME = {
    "ms": r"_ms(_|$)", "µs": r"_us(_|$)", "s": r"_s(_|$)", "req/s": r"(^|_)rps(_|$)", "MiB": r"_mib(_|$)",
    "bytes": r"_bytes(_|$)", "%": r"_pct(_|$)", "fraction": r"_(rate|share)(_|$)", "ratio": r"(_cv$|_x_)",
    "tokens/s": r"tokens_per_s", "tokens": r"^tokens_",
}
PLAIN = {"text", "flag", "count"}  # no unit: the name says what it is


FAULTS_HEADING = "# `faults.csv`"
# faults.csv's own: attempts per request, and the share of held answers whose cancellation reached the mock.
FAULTS_UNITS = {**UNIT_IN_NAME, "attempts/request": r"^amplification_", "fraction": r"_(rate|share|propagated)$"}


def dictionary(csv: str = "comparison") -> list[tuple[str, str, str]]:
    """The rows of one CSV's dictionary: comparison.csv's (before faults.csv's heading) or faults.csv's."""
    before, _, after = DOC.read_text().partition(FAULTS_HEADING)
    rows = [ROW.match(line) for line in (before if csv == "comparison" else after).splitlines()]
    return [(m["column"], m["unit"], m["meaning"]) for m in rows if m]


def test_every_column_is_described_once_in_order():
    documented = [column for column, _, _ in dictionary()]
    assert documented == COMPARISON_COLUMNS, (
        "docs/columns.md and analysis.compare.COMPARISON_COLUMNS differ: "
        f"undocumented {sorted(set(COMPARISON_COLUMNS) - set(documented))}, "
        f"not a column {sorted(set(documented) - set(COMPARISON_COLUMNS))}")


def test_every_faults_column_is_described_once_in_order():
    documented = [column for column, _, _ in dictionary("faults")]
    assert documented == FAULTS_COLUMNS, (
        "docs/columns.md (faults.csv) and analysis.faults.COLUMNS differ: "
        f"undocumented {sorted(set(FAULTS_COLUMNS) - set(documented))}, "
        f"not a column {sorted(set(documented) - set(FAULTS_COLUMNS))}")


@pytest.mark.parametrize("csv,units", [("comparison", UNIT_IN_NAME), ("faults", FAULTS_UNITS)])
def test_every_column_carries_its_unit_in_its_name(csv, units):
    wrong = []
    for column, unit, _ in dictionary(csv):
        if unit in PLAIN:
            if re.search("|".join(units.values()), column) and unit != "count":
                wrong.append(f"{column}: unit '{unit}' but the name reads like a measure")
            continue
        if unit not in units:
            wrong.append(f"{column}: unknown unit '{unit}'")
        elif not re.search(units[unit], column):
            wrong.append(f"{column}: unit '{unit}' not in its name")
    assert not wrong, wrong


def test_count_columns_are_documented_as_counts():
    units = {column: unit for column, unit, _ in dictionary()}
    assert all(units[c] == "count" for c in INTEGER_COLUMNS)


@pytest.fixture(scope="module")
def suite_report(tmp_path_factory):
    targets = {"direct": SuiteTarget(role="baseline"), "floor": SuiteTarget(role="floor", added_ms=0.1),
               "gw": SuiteTarget(added_ms=2.0)}
    return build_report(make_suite_run(tmp_path_factory.mktemp("cols"), targets, repeats=2))


def test_the_written_csv_has_exactly_the_documented_columns_and_whole_counts(suite_report):
    table = pd.read_csv(suite_report.paths["comparison"])
    assert list(table.columns) == [c for c, _, _ in dictionary()]
    # Two repeats of 20,000 requests: the total, a whole number, written without a decimal point.
    text = suite_report.paths["comparison"].read_text()
    assert table.set_index("target").loc["gw", "requests"] == 40_000
    assert ",40000," in text and "40000.0" not in text
    for column in INTEGER_COLUMNS:
        values = table[column].dropna()
        assert (values == values.round()).all(), column


def test_no_added_latency_from_a_closed_loop(suite_report, tmp_path):
    """A suite's published shape and a closed-loop scenario: the rate_added columns stay empty; an open-model
    scenario fills them (target minus direct at the same rate)."""
    assert suite_report.table[RATE_ADDED_COLUMNS].isna().all().all()
    targets = {"direct": Target(role="baseline", p50=1.0), "gw": Target(p50=4.0)}
    closed = build_report(make_run(tmp_path, targets, name="closed"))
    assert closed.table[RATE_ADDED_COLUMNS].isna().all().all()
    assert "+p50 ms" not in closed.paths["markdown"].read_text()
    opened = build_report(make_run(tmp_path, targets, name="open", executor="constant-arrival-rate")).table
    assert opened.set_index("target").loc["gw", "rate_added_p50_ms"] == pytest.approx(3.0)
