"""The streaming probe: time to first token, gap between chunks and chunk fidelity, per stream.

k6 (1.1.0) hands a script the response body only when it is complete, so it cannot see when each
server-sent event arrived (SSE support was proposed for k6 and left to an extension: grafana/k6#746,
grafana/k6#3639). This probe reads the streams with httpx and stamps every event as it arrives. It
opens ``concurrency`` streams at a time to the mock directly and as many through the target, both
at once, for ``duration`` seconds, so both sides see the same machine at the same moment; what the
target adds is the difference.

Standalone on purpose (standard library + httpx): the cloud stage copies this file to the k6 runner.

    python3 stream_probe.py --direct-url URL --target-url URL --body-file body.json \
        [--target-headers '{"h": "v"}'] --concurrency 6 --duration 10 --out DIR

Headers with secret values (a gateway's key) come from the environment, ``AIGW_HEADERS`` (a JSON
object), as for the k6 scripts: never on the command line.

Writes ``DIR/streams.csv`` (one row per stream: time to first content chunk, first byte, spread from
first to last content chunk, chunks, usage and [DONE] seen) and ``DIR/gaps.csv.gz`` (one row per gap
between consecutive content chunks).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import itertools
import json
import os
import sys
import time
from pathlib import Path

import httpx

STREAM_COLUMNS = ["side", "stream", "start_s", "status", "ttft_ms", "first_byte_ms", "spread_ms", "total_ms",
                  "content_chunks", "usage", "done", "error"]


class Recorder:
    def __init__(self) -> None:
        self.streams: list[dict] = []
        self.gaps: list[tuple[str, int, float]] = []
        self.t0 = time.perf_counter()


def _content_of(event_data: str) -> tuple[bool, bool]:
    """(carries content, carries usage) for one `data:` payload."""
    doc = json.loads(event_data)
    choices = doc.get("choices") or []
    content = bool(choices and isinstance(choices[0].get("delta"), dict) and choices[0]["delta"].get("content"))
    return content, bool(doc.get("usage"))


async def one_stream(client: httpx.AsyncClient, side: str, index: int, url: str, headers: dict[str, str],
                     body: bytes, rec: Recorder) -> None:
    start = time.perf_counter()
    row: dict = {"side": side, "stream": index, "start_s": round(start - rec.t0, 4), "status": None,
                 "ttft_ms": None, "first_byte_ms": None, "spread_ms": None, "total_ms": None, "content_chunks": 0,
                 "usage": False, "done": False, "error": ""}
    arrivals: list[float] = []
    try:
        async with client.stream("POST", url, content=body, headers=headers) as resp:
            row["status"] = resp.status_code
            buffer = ""
            async for text in resp.aiter_text():
                now = time.perf_counter()
                if row["first_byte_ms"] is None:
                    row["first_byte_ms"] = round((now - start) * 1000, 3)
                buffer += text
                while "\n\n" in buffer:
                    event, buffer = buffer.split("\n\n", 1)
                    for line in event.splitlines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            row["done"] = True
                            continue
                        try:
                            content, usage = _content_of(data)
                        except (ValueError, AttributeError):
                            row["error"] = "an event that is not JSON"
                            continue
                        row["usage"] = row["usage"] or usage
                        if content:
                            arrivals.append(now)
    except httpx.HTTPError as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"[:200]
    end = time.perf_counter()
    row["total_ms"] = round((end - start) * 1000, 3)
    row["content_chunks"] = len(arrivals)
    if arrivals:
        row["ttft_ms"] = round((arrivals[0] - start) * 1000, 3)
        # First to last content chunk: near zero when something held the stream back and sent it at once.
        row["spread_ms"] = round((arrivals[-1] - arrivals[0]) * 1000, 3)
        rec.gaps.extend((side, index, round((b - a) * 1000, 3)) for a, b in itertools.pairwise(arrivals))
    rec.streams.append(row)


async def _worker(client: httpx.AsyncClient, side: str, url: str, headers: dict[str, str], body: bytes,
                  deadline: float, counter: list[int], rec: Recorder) -> None:
    while time.perf_counter() < deadline:
        counter[0] += 1
        await one_stream(client, side, counter[0], url, headers, body, rec)


async def probe(direct_url: str, target_url: str, target_headers: dict[str, str], body: bytes, concurrency: int,
                duration: float, timeout: float) -> Recorder:
    rec = Recorder()
    deadline = time.perf_counter() + duration
    base = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    limits = httpx.Limits(max_connections=2 * concurrency + 2, max_keepalive_connections=2 * concurrency + 2)
    timeouts = httpx.Timeout(timeout, connect=10.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeouts, trust_env=False) as client:
        counter = [0]
        sides = (("direct", direct_url, base), ("target", target_url, {**base, **target_headers}))
        await asyncio.gather(*(_worker(client, side, url, headers, body, deadline, counter, rec)
                               for side, url, headers in sides for _ in range(concurrency)))
    return rec


def write(rec: Recorder, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "streams.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=STREAM_COLUMNS)
        writer.writeheader()
        writer.writerows(sorted(rec.streams, key=lambda r: r["start_s"]))
    with gzip.open(out / "gaps.csv.gz", "wt", newline="") as fh:
        writer2 = csv.writer(fh)
        writer2.writerow(["side", "stream", "gap_ms"])
        writer2.writerows(rec.gaps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--direct-url", required=True)
    parser.add_argument("--target-url", required=True)
    parser.add_argument("--target-headers", default="{}", help="JSON object of extra request headers")
    parser.add_argument("--body-file", required=True, type=Path)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    headers = {**json.loads(args.target_headers), **json.loads(os.environ.get("AIGW_HEADERS") or "{}")}
    rec = asyncio.run(probe(args.direct_url, args.target_url, headers,
                            args.body_file.read_bytes(), args.concurrency, args.duration, args.timeout))
    write(rec, args.out)
    print(f"aigw-bench stream probe: {len(rec.streams)} streams, {len(rec.gaps)} gaps", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
