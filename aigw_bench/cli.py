"""The ``aigw-bench`` command line."""

from __future__ import annotations

import errno
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
from rich.console import Console
from rich.text import Text

from aigw_bench.measure.plan import Knobs
from schema.catalog import load_catalog
from schema.errors import BenchError, ConfigError, is_disk_error
from schema.mock import DEFAULT_MOCK, list_mocks, load_mock
from schema.results import DEFAULT_RESULTS_DIR

if TYPE_CHECKING:
    from analysis.scorecard import Scorecard

console = Console(stderr=True, highlight=False, soft_wrap=True)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _split(value: str | None, option: str) -> list[str] | None:
    """A comma-separated option: None when it is not given; given, it must name something (``-t ","`` is
    not "every target")."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.UsageError(f"{option} {value!r} names nothing: give one or more names, comma-separated"
                               + (", or leave it out for all" if option == "--targets" else ""))
    return names


def _catalog_option(f):
    return click.option("--catalog", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="Catalog directory (default: $AIGW_BENCH_CATALOG, else stacks/ of this "
                             "repository).")(f)


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="aigw-bench")
def main() -> None:
    """Benchmark AI gateways with the same load and the same mock LLM, and compare them."""


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Rows as aligned columns, each as wide as its widest cell (the last column is not padded)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [indent + "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip() for r in rows]


def _chosen(cat, names: list[str] | None) -> list:
    """The catalog entries named, a former name taken for the entry's new one with a notice (for one release)."""
    for old, new in cat.renamed(names).items():
        console.print(f"[yellow]notice:[/] target '{old}' is now called '{new}'; '{old}' is accepted in this "
                      "release only", markup=True)
    return cat.select(names)


def _where(g) -> str:
    local, cloud = g.local.runnable, g.cloud is not None
    return {(True, True): "local + cloud", (True, False): "local only", (False, True): "cloud only"}.get(
        (local, cloud), "nowhere")


def _installed(g, users: dict[Path, list[str]]) -> str:
    """Whether a target's local install is there (and with whom it shares it)."""
    from aigw_bench.local.install import InstallTarget, is_installed

    if not g.local.runnable:
        return "-"
    if g.local.install is None:
        return "nothing to install"
    item = InstallTarget(g.name, g.local.install, g.entry_dir)
    state = "installed" if is_installed(item) else "not installed"
    others = [n for n in users.get(item.install_dir, []) if n != g.name] if item.install_dir else []
    return state + (f" (shared with {', '.join(others)})" if others else "")


@main.command("list")
@_catalog_option
def list_targets(catalog: Path | None) -> None:
    """Show the catalog (every target, its role and pinned version, where it runs, whether it is
    installed here), the mocks with their pacing profiles, the suites and the scenarios."""
    from aigw_bench.local.install import InstallTarget
    from schema.mock import load_profiles
    from schema.scenarios import list_scenarios
    from schema.suites import list_suites

    cat = load_catalog(catalog)
    users: dict[Path, list[str]] = {}
    for g in cat:
        if g.local.runnable and g.local.install:
            where = InstallTarget(g.name, g.local.install, g.entry_dir).install_dir
            if where is not None:
                users.setdefault(where, []).append(g.name)
    click.echo(f"targets ({cat.root}):")
    rows = [["name", "role", "version", "runs", "installed here", "title"]]
    notes: list[str] = []
    for g in cat:
        rows.append([g.name, g.role, g.version, _where(g), _installed(g, users), g.title])
        if not g.local.runnable:
            notes.append(f"  {g.name}: not runnable here: {' '.join((g.local.reason or '').split())}")
        for suite in dict.fromkeys(v.suite for v in g.variants.values()):
            names = [n + (" (unsupported)" if g.variants[n].unsupported else "") for n in g.variants_of(suite)]
            notes.append(f"  {g.name}: {suite} variants: {', '.join(names)}")
    for line in _table(rows):
        click.echo(line)
    for line in notes:
        click.echo(line)
    click.echo("mocks:")
    mock_rows = []
    for name in list_mocks():
        m = load_mock(name)
        default = " (default)" if name == DEFAULT_MOCK else ""
        mock_rows.append([name, m.version, f"{m.title}{default}; pacing profiles: {', '.join(m.profiles)}"])
    for line in _table(mock_rows):
        click.echo(line)
    click.echo("pacing profiles:")
    profile_rows = []
    for name, p in load_profiles().items():
        pace = (f"TTFT {p.ttft_ms:g} ms, {p.per_token_ms:g} ms/token, {p.output_tokens or 24} tokens"
                if p.paced else "no delay")
        profile_rows.append([name, pace + (f" ({p.source})" if p.source else "")])
    for line in _table(profile_rows):
        click.echo(line)
    click.echo(f"suites: {', '.join(list_suites())}  (aigw-bench run --suite NAME)")
    click.echo(f"scenarios: {', '.join(list_scenarios())}  (aigw-bench run -s NAME)")


@main.command()
@click.argument("targets", nargs=-1)
@click.option("--with-browser", is_flag=True, help="Also install Debian's chromium (the report tests render HTML).")
@_catalog_option
def setup(targets: tuple[str, ...], with_browser: bool, catalog: Path | None) -> None:
    """Install the mocks and the local tools of TARGETS (default: every runnable target).

    Pinned lock files with hashes: npm ci for npm packages, pip --require-hashes into a virtualenv of
    its own, apt-get for Debian packages (as root or with sudo). Installs are keyed by their lock
    files, not by the entry: entries with the same lock share one install (setup says which).
    Idempotent: up-to-date tools are kept.
    """
    from aigw_bench.local.install import InstallTarget, disk_usage, install, tools_dir, unused_tool_dirs
    from schema.catalog import InstallSpec
    from schema.services import load_service

    cat = load_catalog(catalog)
    mocks = [load_mock(name) for name in list_mocks()]
    every = [InstallTarget(m.name, m.local.install, m.entry_dir) for m in mocks if m.local.install]
    every += [InstallTarget(g.name, g.local.install, g.entry_dir) for g in cat
              if g.local.runnable and g.local.install]
    chosen = {g.name for g in _chosen(cat, list(targets) or None)}
    items = [t for t in every if t.name in chosen or t.name in {m.name for m in mocks}]
    # The backing services (services/<name>/) the chosen targets or any of their variants need.
    needed = dict.fromkeys(n for g in cat if g.name in chosen
                           for n in [*g.local.services, *(n for v in g.variants.values() for n in v.services)])
    items += [InstallTarget(s.name, s.install, s.entry_dir) for s in map(load_service, needed)]
    # The hey scenario also runs the published tool itself (Debian's hey) after k6.
    items.append(InstallTarget("hey", InstallSpec(apt=["hey"], provides="hey"), mocks[0].entry_dir))
    if with_browser:
        items.append(InstallTarget("chromium", InstallSpec(apt=["chromium"], provides="chromium"), mocks[0].entry_dir))
    users: dict[Path, list[str]] = {}
    for t in every:
        if t.install_dir is not None:
            users.setdefault(t.install_dir, []).append(t.name)

    def shown(path: Path) -> str:
        return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)

    done: dict[Path, str] = {}
    for item in items:
        where = item.install_dir
        if where is not None and where in done:
            click.echo(f"{item.name}: shares the install of {done[where]} ({shown(where)}): nothing to do", err=True)
            continue
        click.echo(f"{item.name}: {item.spec.kind} ...", err=True)
        result = install(item, log=lambda m: click.echo(m, err=True))
        others = [n for n in users.get(where, []) if n != item.name] if where else []
        place = f" in {shown(where)}" if where else ""
        click.echo(f"{item.name}: {result}{place}" + (f", shared with {', '.join(others)}" if others else ""), err=True)
        if where is not None:
            done[where] = item.name
    if not targets:
        unused = unused_tool_dirs(list(users))
        if unused:
            sizes = ", ".join(f"{shown(d)} ({disk_usage(d) / 2**20:,.0f} MiB)" for d in unused)
            click.echo(f"not used by this catalog under {shown(tools_dir())}: {sizes}; remove with: rm -rf "
                       + " ".join(shown(d) for d in unused), err=True)


@main.command()
@click.argument("target")
@click.option("--mock", "mock_name", default=DEFAULT_MOCK, show_default=True,
              help=f"Mock implementation in mock_llm/ ({', '.join(list_mocks())}).")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the rendered configs and the logs here (default: a temporary directory, removed).")
@click.option("--mock-profile", help="The mock's pacing profile (default: instant); 'llm' paces the stream like a "
                                     "hosted model, to see when the target relays the first token.")
@click.option("--no-pin", is_flag=True, help="Do not pin the mock and the target to separate CPUs.")
@_catalog_option
def check(target: str, mock_name: str, work: Path | None, mock_profile: str | None, no_pin: bool,
          catalog: Path | None) -> None:
    """Try one catalog entry in seconds: validate it, start it against the mock as a run does, send one
    request and one stream through it, print what it answered and how long start-up took, stop
    everything. No rig, no k6, no report. Exit status 1 if it cannot serve."""
    import tempfile

    from aigw_bench.local.check import check_target
    from aigw_bench.local.cpus import plan_cpus
    from schema.catalog import ENTRY_FILE, catalog_dir, load_entry

    root = catalog_dir(catalog)
    # Only this entry is loaded when its folder exists: a broken sibling does not hide its own messages.
    entry = load_entry(root / target) if (root / target / ENTRY_FILE).is_file() else load_catalog(root).get(target)
    mock = load_mock(mock_name)
    with tempfile.TemporaryDirectory(prefix=f"aigw-check-{entry.name}-") as tmp:
        result = check_target(entry, mock, plan_cpus(pin=not no_pin), (work or Path(tmp)).resolve(), mock_profile)
    lines = _check_lines(entry, mock, result)
    if work:
        lines.insert(-1, f"  configs and logs: {work / 'session'}")
    for line in lines:
        click.echo(line)
    if not result.ok:
        sys.exit(1)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _check_lines(entry, mock, result) -> list[str]:
    """What `check` prints: the entry, start-up times, each answer, the verdict."""
    found = (result.version or {}).get("installed")
    if entry.local.version_probe is None:
        probe = ""
    elif found is None:
        probe = "; its version probe found no version"
    else:
        probe = f"; installed {found}, " + ("matches the pin" if result.version.get("matches_pin")
                                            else "DOES NOT match the pin")
    lines = [f"{entry.name} ({entry.role}: {entry.title}, version {entry.version}{probe})",
             f"  started: mock {mock.name} " + (f"ready in {_seconds(result.mock_seconds)}"
                                                    if result.mock_seconds is not None else "not ready")
             + (f", {entry.name} has no process of its own" if not entry.local.command
                else f", {entry.name} ready in {_seconds(result.ready_seconds)}" if result.ready_seconds is not None
                else f", {entry.name} not ready")
             + (f", first request answered in {_seconds(result.first_request_seconds)}"
                if result.first_request_seconds is not None else "")]
    if result.url:
        lines.append(f"  url: {result.url}")
    for a in result.answers:
        if a.error:
            what = a.error
        elif a.ok and a.label == "stream":
            what = (f"HTTP {a.status} in {_seconds(a.seconds)}, {a.chunks} content chunks, the first after "
                    f"{_seconds(a.first_chunk_seconds)}, " + ("usage, " if a.usage else "no usage, ")
                    + ("[DONE]" if a.done else "no [DONE]"))
        elif a.ok:
            what = f"HTTP {a.status} in {_seconds(a.seconds)}, a chat completion"
        else:
            what = f"HTTP {a.status} in {_seconds(a.seconds)}, not a well-formed OpenAI chat completion"
        lines.append(f"  {a.label + ':':<9}{what}")
        if a.usage:
            lines.append(f"  {'':<9}usage: {json.dumps(a.usage, separators=(', ', ': '))}")
        if a.content:
            lines.append(f"  {'':<9}answer: {a.content[:160]!r}")
        elif a.snippet:
            lines.append(f"  {'':<9}body: {a.snippet[:300]!r}")
    if result.reason:
        lines.append(f"  {result.status}: {result.reason}")
        ev = result.evidence
        smoke = ev.get("smoke") or {}
        if smoke.get("body_snippet"):
            lines.append(f"  first answer: {smoke['body_snippet'][:300]!r}")
        if ev.get("last_probe"):
            lines.append(f"  last readiness probe: {ev['last_probe']}")
        for tail in ev.get("log_tail") or []:
            lines.append(f"  | {tail}")
    lines.append(f"ok: {entry.name} answered the benchmark's request and streamed" if result.ok
                 else f"not ok: {entry.name} cannot be measured as it is")
    return lines


KNOBS = tuple(k.name for k in fields(Knobs))


def _knobs(options: dict) -> Knobs:
    """The scenario options of a command (``--vus`` ...), taken out of its other options."""
    return Knobs(**{name: options.pop(name) for name in KNOBS})


def _knob_options(f):
    """A scenario's knobs (:class:`Knobs`): the same for `run`, `cloud run`, `cloud matrix` and `render`."""
    for knob in reversed(fields(Knobs)):
        names = ["--" + knob.name.replace("_", "-"), *([knob.metadata["short"]] if knob.metadata["short"] else [])]
        f = click.option(*names, knob.name, type=knob.metadata["type"], help=knob.metadata["help"])(f)
    return f


def _scenario_options(f):
    """The scenario and its knobs, shared by the local and the cloud commands."""
    options = [
        click.option("--scenario", "-s", help="Scenario in k6_scripts/scenarios/ (e.g. seed, stream, rate)."),
        _knob_options,
        click.option("--repeats", "-r", type=click.IntRange(min=1, max=100),
                     help="Sessions per target, interleaved across targets (default: the suite's, or 1)."),
        click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_RESULTS_DIR,
                     show_default=True, help="Where run directories are created."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@click.option("--targets", "-t", help="Comma-separated targets (default: all in the catalog).")
@click.option("--suite", help="Suite in k6_scripts/suites/: overhead, capacity, efficiency, streaming and the "
                              "published shape (default: 'default', unless --scenario is given).")
@_scenario_options
@click.option("--mock", "mock_name", default=DEFAULT_MOCK, show_default=True,
              help=f"Mock implementation in mock_llm/ ({', '.join(list_mocks())}).")
@click.option("--mock-profile", help="The mock's pacing profile in mock_llm/profiles.yaml (default: the "
                                     "scenario's; a suite starts with 'instant' and streams with its own).")
@click.option("--no-pin", is_flag=True, help="Do not pin load generator, mock and gateway to separate CPUs.")
@click.option("--no-raw", is_flag=True, help="Skip k6's per-request CSV (no per-second series).")
@click.option("--policy", "--variant", "variants",
              help="Comma-separated catalog variants to run (default: all) of a suite that runs variants: "
                   "--suite policies (auth, limits, cache, ...), --suite faults.")
@_catalog_option
def run(targets: str | None, suite: str | None, scenario: str | None, repeats: int | None, results: Path,
        mock_name: str, mock_profile: str | None, no_pin: bool, no_raw: bool, variants: str | None,
        catalog: Path | None, **options) -> None:
    """Benchmark targets locally: real mock, real gateways, real k6; then write the report.

    First the rig measures itself (k6 straight to the mock: ceiling and floor). Then each target in
    turn: start the mock and the gateway, wait until ready, check the route with one request, run the
    suite's steps (or the scenario), stop everything. A target that cannot run or dies is recorded
    with its evidence and the run goes on.
    """
    from aigw_bench.local.cpus import plan_cpus
    from aigw_bench.local.engine import LocalEngine
    from aigw_bench.run.plan import plan_run

    engine = LocalEngine(load_mock(mock_name), plan_cpus(pin=not no_pin))
    chosen = _chosen(load_catalog(catalog), _split(targets, "--targets"))
    plan = plan_run("local", targets=chosen, scenario=scenario, suite=suite, mock_profile=mock_profile,
                    knobs=_knobs(options), repeats=repeats, results_root=results,
                    keep_raw=not no_raw, command_line=sys.argv, variants=_split(variants, "--policy"))
    _notice_left_out(plan)
    _run_and_report(plan, engine)


def _notice_left_out(plan) -> None:
    """Entries a variants suite does not run (they declare none of its variants), said before the run starts."""
    if plan.left_out:
        kind = plan.measurement.suite.variants
        console.print(f"[yellow]notice:[/] {', '.join(plan.left_out)} declare{'s' if len(plan.left_out) == 1 else ''} "
                      f"no {kind} variant (stacks/<name>/gateway.yaml, variants:): not in this run", markup=True)


def _run_and_report(plan, engine, standalone: bool = True) -> Path:
    """Run with the progress display. ``standalone``: then write the report; a run stopped early (Ctrl-C,
    SIGTERM, a full or read-only disk) gets the report of what was measured and exits non-zero. Otherwise
    (one stack of the cloud matrix) leave both to the caller."""
    from aigw_bench.progress import ProgressPrinter
    from aigw_bench.run.interrupts import STOP, DiskFault, signals_as_exceptions
    from aigw_bench.run.loop import Runner

    printer = ProgressPrinter(console)
    runner = Runner(plan, engine, on_event=printer)
    with signals_as_exceptions():  # one count of Ctrl-C for the run and the report after it
        try:
            run_dir = runner.run()
        except (DiskFault, *STOP) as stop:
            printer.close()
            if not standalone:
                raise
            _report_stopped(runner, stop)
        finally:
            printer.close()
        if standalone:
            paths, card = _write_report(run_dir)
            _print_summary(paths["comparison"], card)
            _print_paths(paths)
    return run_dir


def _shown(path: Path) -> str:
    """A path as the person types it: relative to the working directory when under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _write_report(run_dir: Path, stopping: bool = False) -> tuple[dict[str, Path], Scorecard | None]:
    """Every report file and the scorecard, or one line naming those not written and why, and the command that
    rebuilds them (exit 130 when stopped by Ctrl-C, else 1). ``stopping``: the run was stopped early; then
    return what was written and let the caller say the rest."""
    from aigw_bench.run.interrupts import STOP
    from analysis.report import ReportIncomplete, build_report

    rebuild = f"rebuild it with `aigw-bench report {_shown(run_dir)}`"
    try:
        built = build_report(run_dir)
        return built.paths, built.scorecard
    except ReportIncomplete as exc:
        problem, code = f"{exc}; {rebuild}", 130 if exc.interrupted else 1
        written = exc.written
    except STOP:
        problem, code, written = f"report not written (stopped while it was being built); {rebuild}", 130, {}
    if stopping:  # the caller's line says why the run stopped; this one, what became of the report
        console.print(Text(problem, style="yellow"), soft_wrap=True)
        return written, None
    console.print(Text.assemble(("error: ", "bold red"), problem), soft_wrap=True)
    sys.exit(code)


def _print_paths(paths: dict[str, Path]) -> None:
    click.echo(f"report (markdown): {paths['markdown']}")
    click.echo(f"report: {paths['html']}")


def _print_summary(comparison_csv: Path, card: Scorecard | None = None) -> None:
    """The run's last words: a suite's scorecard (the report's first table), else the scenario's figures."""
    import pandas as pd

    if card is not None:
        click.echo(f"\n{card.table.title}")
        for line in _table([card.table.headers, *card.table.rows]):
            click.echo(line)
        for line in card.not_run:
            click.echo(f"  not measured here: {line}")
        return
    table = pd.read_csv(comparison_csv)
    cols = ["target", "status", "rps", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"]
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:,.2f}".format):
        click.echo(table[cols].to_string(index=False))


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(run_dir: Path) -> None:
    """Rebuild comparison.csv and report.md from the files of an existing RUN_DIR."""
    from aigw_bench.run.lock import live_holder, results_lock_path

    holder = live_holder(results_lock_path(run_dir.resolve().parent))
    if holder is not None and holder.run_dir and Path(holder.run_dir).resolve() == run_dir.resolve():
        console.print(f"[yellow]this run is still going[/] (pid {holder.pid}): the report shows what is on disk "
                      "so far; the session being measured reads as 'no end recorded'", markup=True)
    paths, card = _write_report(run_dir)
    _print_summary(paths["comparison"], card)
    _print_paths(paths)


@main.command()
@click.argument("before", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("after", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--threshold", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              help="Relative change (%) counted as real when a run has no repeats to judge the noise by.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the markdown here.")
@click.option("--fail-on-regression", is_flag=True, help="Exit with status 1 if any regression is found.")
@click.option("--history", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of earlier runs like BEFORE (same suite, machine and versions) whose spread confirms a "
                   "change in capacity, CPU, memory or throughput (repeatable; default: BEFORE's and AFTER's folders).")
def compare(before: Path, after: Path, threshold: float, output: Path | None, fail_on_regression: bool,
            history: tuple[Path, ...]) -> None:
    """Compare two run directories (e.g. before/after a gateway upgrade): change per target and metric.

    A change is real when the two runs' 95% intervals (widened to their sessions' range) do not overlap, or
    beyond --threshold where a run has none; capacity, CPU, memory and throughput also need to move by more
    than their spread over three or more earlier runs like BEFORE, else they are "unconfirmed". Regressions
    are listed first.
    """
    from analysis.compare_runs import compare_runs, render_comparison

    result = compare_runs(before, after, threshold / 100.0, history=list(history) or None)
    text = render_comparison(result, before, after)
    if output:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)
    if fail_on_regression and not result.regressions.empty:
        sys.exit(1)


@main.command()
@click.option("--target", "-t", required=True, help="Catalog target to render for.")
@click.option("--scenario", "-s", default="seed", show_default=True)
@click.option("--url", help="Base URL of the target (default: its local address).")
@click.option("--profile", type=click.Choice(["local", "cloud"]), default="local", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@_knob_options
@_catalog_option
def render(target: str, scenario: str, url: str | None, profile: str, output: Path | None,
           catalog: Path | None, **options) -> None:
    """Print the k6 script a scenario renders for one target (to read it, or run it by hand): byte for
    byte what `run -s SCENARIO` with the same knobs sends it (the same template context and parameters)."""
    from aigw_bench.local.context import NO_WORK_DIR, target_context, target_endpoint
    from aigw_bench.local.cpus import plan_cpus
    from aigw_bench.measure.plan import measurement
    from k6_scripts.render import render_script

    entry = _chosen(load_catalog(catalog), [target])[0]
    if url is None and not entry.local.runnable:
        raise click.UsageError(
            f"{target} does not run on this machine, so it has no local address to render for: give its address "
            f"with --url (e.g. the gateway endpoint of its stack, `pulumi stack output -s {target}`), and "
            "--profile cloud for the cloud sizes")
    m = measurement(profile, scenario=scenario, suite=None, mock_profile=None,  # type: ignore[arg-type]
                    knobs=_knobs(options), repeats=None)
    context = target_context(entry, load_mock(), plan_cpus(), NO_WORK_DIR)
    script = render_script(m.scenario, m.params, target_endpoint(entry, context, base=url))
    if output:
        output.write_text(script.source)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(script.source, nl=False)


@main.group()
def cloud() -> None:
    """The AWS target: run the benchmark on deployed gateway stacks (see docs/cloud.md)."""


def _aws_clients():
    import boto3

    from aigw_bench.cloud.outputs import check_aws_credentials

    sessions: dict[str, object] = {}

    def clients(region: str):
        if region not in sessions:
            session = boto3.Session(region_name=region)
            check_aws_credentials(session)
            sessions[region] = session
        session = sessions[region]
        return session.client("ssm"), session.client("s3")  # type: ignore[attr-defined]

    return clients


def _cloud_plan(stack_outputs, cat, *, scenario, suite, mock_profile, knobs: Knobs, repeats, results: Path,
                variants: str | None = None):
    """The run's plan with the cloud sizes (no stacks yet: checks the options before any stack is read; the
    variants chosen with --policy are checked against the stacks' entries once they are)."""
    from aigw_bench.run.plan import plan_run
    from schema.catalog import variant_targets

    plan = plan_run("cloud", targets=[cat.get(o.gateway_name) for o in stack_outputs], scenario=scenario, suite=suite,
                    mock_profile=mock_profile, knobs=knobs, repeats=repeats, results_root=results,
                    command_line=sys.argv, variants=_split(variants, "--policy") if stack_outputs else None)
    # A suite that runs variants measures each on the gateway its stack deployed for it (stack config
    # `variants`); the engine's validate() refuses one the stack did not deploy, naming the commands.
    chosen = plan.measurement.suite
    if not stack_outputs and variants and not (chosen and chosen.variants):
        variant_targets([], None, _split(variants, "--policy"))  # refuses: variants chosen for a run without any
    return plan


def _plan_sizes(plan) -> dict[str, float]:
    """Seconds each session measures (at most, for a suite) and how many: for the time and cost estimate."""
    m = plan.measurement
    if m.sizes is not None:
        return {"warmup": 0.0, "duration": m.sizes.session_seconds(), "repeats": m.repeats}
    return {"warmup": m.params.warmup, "duration": m.params.duration, "repeats": m.repeats}


def _report_stopped(runner, stop: BaseException) -> NoReturn:
    """A run stopped early: the report of what was measured (if anything started), one line, exit non-zero:
    1 for a full or read-only disk (the line names the path), 130 for Ctrl-C or SIGTERM."""
    from aigw_bench.run.interrupts import DiskFault

    run_dir: Path | None = runner.run_dir
    if run_dir is None:
        sys.exit(130)
    paths, _ = _write_report(run_dir, stopping=True)
    where = f"what was measured is in {paths['html']}" if "html" in paths else f"what was measured is kept in {run_dir}"
    unwritten = f"; not written: {', '.join(runner.unwritten)}" if runner.unwritten else ""
    if isinstance(stop, DiskFault):
        console.print(Text.assemble(("error: ", "bold red"), f"the run stopped: {stop}; {where}{unwritten}"),
                      soft_wrap=True)
        sys.exit(1)
    console.print(Text.assemble(("interrupted", "yellow"), f"; {where}{unwritten}"), soft_wrap=True)
    sys.exit(130)


# --- k6-operator engine and plan confirmation (issue 13) -------------------------------------------
def _engine_options(f):
    options = [
        click.option("--engine", type=click.Choice(["ec2", "operator"]), default="ec2", show_default=True,
                     help="ec2: k6 on the stack's EC2 runner(s) over SSM (the published setup); operator: a "
                          "k6-operator TestRun on the load-generator pool, metrics streamed to Prometheus."),
        click.option("--parallelism", type=click.IntRange(1, 100),
                     help="operator engine: runner pods of a job whose load may be split (default: one per "
                          "load-generator node; never more than a job's VUs; refused above the scenario's)."),
        click.option("--prometheus-url", help="operator engine: read Prometheus here (e.g. a kubectl port-forward) "
                                              "instead of through the Kubernetes API server."),
        click.option("--yes", "-y", is_flag=True, help="Start without asking to confirm the plan's time and cost."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _confirm_plan(estimate, yes: bool) -> None:
    """Print the plan's expected time and cost; go on only when confirmed (or --yes)."""
    console.print(estimate.text(), markup=False)
    if yes:
        return
    if not _stdin_is_terminal():
        raise click.UsageError("the plan above needs confirmation and stdin is not a terminal: pass --yes to start it")
    click.confirm("Start it?", abort=True, err=True)


def _cloud_engine(engine: str, parallelism: int | None, prometheus_url: str | None):
    """A factory of the chosen engine for a list of stacks: chosen once, here."""
    if engine != "operator":
        if parallelism or prometheus_url:
            raise click.UsageError("--parallelism and --prometheus-url apply to --engine operator only")
        from aigw_bench.cloud.engine import Ec2Engine

        return lambda stacks: Ec2Engine(stacks, _aws_clients())
    from aigw_bench.cloud.operator_engine import OperatorEngine, OperatorOptions

    options = OperatorOptions(parallelism=parallelism, prometheus_url=prometheus_url)
    return lambda stacks: OperatorEngine(stacks, options)
# --- end k6-operator engine and plan confirmation ---------------------------------------------------


def _cloud_options(f):
    """What `cloud run` and `cloud matrix` measure: the suite (default) or a scenario, as `run` does."""
    options = [
        click.option("--suite", help="Suite in k6_scripts/suites/ (default: 'default', unless --scenario is given); "
                                     "its cloud sizes are used."),
        click.option("--mock-profile", help="The mock's pacing profile at the start of each session (default: the "
                                            "scenario's; a suite starts with 'instant' and streams with its own)."),
        click.option("--policy", "--variant", "variants",
                     help="Comma-separated catalog variants to run (default: all) of a suite that runs variants "
                          "(--suite policies); each must be deployed by its stack (stack config `variants`)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@cloud.command("run")
@click.option("--stack", "stacks", required=True, help="Deployed stack(s), comma-separated (e.g. kong,portkey).")
@_cloud_options
@_scenario_options
@_engine_options
@_catalog_option
def cloud_run(stacks: str, suite: str | None, mock_profile: str | None, variants: str | None, scenario: str | None,
              repeats: int | None, results: Path, engine: str, parallelism: int | None, prometheus_url: str | None,
              yes: bool, catalog: Path | None, **options) -> None:
    """Benchmark already deployed stacks (after `pulumi up`): the rig first (k6 on each stack's load
    generators straight to its mock), then the suite's steps (or a scenario) per target: k6 on the EC2
    runner(s) via SSM, results through S3; or, with --engine operator, as k6-operator TestRuns on the
    cluster (metrics through Prometheus). The same report as local runs."""
    from aigw_bench.cloud.outputs import read_stack_outputs
    from aigw_bench.cloud.plan_cost import StackCost, estimate_run

    cat = load_catalog(catalog)
    knobs = _knobs(options)
    # bad options fail before any stack is read
    planned = _cloud_plan([], cat, scenario=scenario, suite=suite, mock_profile=mock_profile, knobs=knobs,
                          repeats=repeats, results=results, variants=variants)
    make_engine = _cloud_engine(engine, parallelism, prometheus_url)
    outputs = [read_stack_outputs(s) for s in _split(stacks, "--stack") or []]
    _confirm_plan(estimate_run([StackCost(o.stack, o.hourly_cost_usd) for o in outputs], engine=engine,
                               **_plan_sizes(planned)), yes)
    if engine == "operator":
        from aigw_bench.cloud.operator_engine import grafana_hint

        for o in outputs:
            console.print(grafana_hint(o), markup=False)
    plan = _cloud_plan(outputs, cat, scenario=scenario, suite=suite, mock_profile=mock_profile, knobs=knobs,
                       repeats=repeats, results=results, variants=variants)
    _run_and_report(plan, make_engine(outputs))


@cloud.command("matrix")
@click.option("--stacks", required=True, help="Stacks to deploy, benchmark and destroy, e.g. direct,kong,portkey.")
@_cloud_options
@_scenario_options
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Matrix directory; reuse one to resume (default: results/matrix-<timestamp>).")
@click.option("--keep", is_flag=True, help="Leave the stacks deployed afterwards (they cost money).")
@click.option("--rerun", is_flag=True, help="Measure stacks again even if the matrix already has their results.")
@_engine_options
@_catalog_option
def cloud_matrix(stacks: str, suite: str | None, mock_profile: str | None, variants: str | None, scenario: str | None,
                 repeats: int | None, results: Path, directory: Path | None, keep: bool, rerun: bool, engine: str,
                 parallelism: int | None, prometheus_url: str | None, yes: bool, catalog: Path | None,
                 **options) -> None:
    """pulumi up -> benchmark -> pulumi destroy for each stack, in parallel; one combined report.

    Resumable: run it again with the same --dir and finished stacks are skipped. A failing stack is
    recorded and the others go on.
    """
    from datetime import UTC, datetime

    from aigw_bench.cloud.matrix import PulumiWorkspace, run_matrix
    from analysis.report import build_report
    from schema.base import REPO_DIR

    cat = load_catalog(catalog)
    knobs = _knobs(options)
    planned = _cloud_plan([], cat, scenario=scenario, suite=suite, mock_profile=mock_profile, knobs=knobs,
                          repeats=repeats, results=results, variants=variants)  # bad options: before any deploy
    names = _split(stacks, "--stacks") or []
    make_engine = _cloud_engine(engine, parallelism, prometheus_url)
    workspace = PulumiWorkspace(REPO_DIR)
    workspace.check_tools()  # before any stack is deployed
    _confirm_plan(_matrix_estimate(names, cat, engine, planned), yes)
    directory = directory or results / f"matrix-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"

    def benchmark(outputs, root: Path) -> Path:
        plan = _cloud_plan([outputs], cat, scenario=scenario, suite=suite, mock_profile=mock_profile, knobs=knobs,
                           repeats=repeats, results=root, variants=variants)
        return _run_and_report(plan, make_engine([outputs]), standalone=False)

    result = run_matrix(names, directory, workspace, benchmark, keep=keep, rerun=rerun,
                        on_event=lambda event, **d: console.print(f"{d['stack']}: {d['step']}", markup=False))
    if result.combined:
        built = build_report(result.combined)
        _print_summary(built.paths["comparison"], built.scorecard)
        _print_paths(built.paths)
    for name, errors in result.problems.items():
        console.print(f"{name}: {errors[-1]}", markup=False, style="red")
    if result.problems:
        console.print(f"state and logs: {directory} (run the same command again to resume)", markup=False)
        sys.exit(1)


def _matrix_estimate(names: list[str], cat, engine: str, planned):
    """Hourly costs from the stack files (nothing is deployed yet)."""
    from aigw_bench.cloud.plan_cost import StackCost, estimate_matrix
    from components.config import ConfigValidationError, stack_file_hourly_cost
    from schema.base import REPO_DIR

    costs = []
    for name in names:
        path = REPO_DIR / f"Pulumi.{name}.yaml"
        if not path.exists():
            raise ConfigError(f"{path} does not exist: `cloud matrix` deploys stacks from their stack files")
        try:
            costs.append(StackCost(name, stack_file_hourly_cost(path, cat)))
        except ConfigValidationError as exc:
            raise ConfigError(str(exc)) from None
    return estimate_matrix(costs, engine=engine, **_plan_sizes(planned))


def entrypoint() -> None:
    try:
        main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BenchError as exc:
        # Unwrapped and without markup: messages carry paths and brackets, and people grep logs.
        console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        sys.exit(2)
    except OSError as exc:
        if not (is_disk_error(exc) or exc.errno == errno.EACCES):
            raise
        # A full, read-only or forbidden disk outside a run (a report, a render -o): one line, the path.
        console.print(Text.assemble(("error: ", "bold red"), f"{exc.strerror}: {exc.filename}"), soft_wrap=True)
        sys.exit(1)


__all__ = ["ConfigError", "entrypoint", "main"]
