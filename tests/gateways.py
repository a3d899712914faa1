"""A small real gateway for the measurement tests: an HTTP proxy in front of the mock (Python's
http.server, one thread per connection, keep-alive to the mock) whose misbehaviour is known exactly.

    python3 -c PROXY aigw-bench-fake PORT MOCK_URL MODE VALUE [LOADGEN_CPU]

MODE:
- ``delay``: each answer waits VALUE ms more (a gateway deliberately slowed by a known amount);
- ``slowstart``: each answer waits more during the proxy's first VALUE seconds, 5 ms at its start
  and less and less until VALUE (a JIT settling: the per-second medians fall, then stay);
- ``spill``: once its traffic stops (20 ms without a request), VALUE ms of CPU burnt on LOADGEN_CPU
  (the load generator's and the mock's CPU): work that outlives the answers, like a flush when a
  burst ends, and slows whatever runs there next (a known carry-over).
"""

from __future__ import annotations

PROXY = r'''
import http.client, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse
port, mock, mode, value = int(sys.argv[2]), urlparse(sys.argv[3]), sys.argv[4], float(sys.argv[5])
loadgen_cpu = int(sys.argv[6]) if len(sys.argv) > 6 else None
started = time.monotonic()
local = threading.local()
last_answer = [0.0]
answered = threading.Event()

def upstream():
    if getattr(local, "conn", None) is None:
        local.conn = http.client.HTTPConnection(mock.hostname, mock.port, timeout=30)
    return local.conn

def burn(micros):
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {loadgen_cpu})
    end = time.perf_counter() + micros / 1e6
    while time.perf_counter() < end:
        pass
    os.sched_setaffinity(0, own)

def spill_when_idle():
    while True:
        answered.wait()
        while time.monotonic() - last_answer[0] < 0.020:
            time.sleep(0.0005)
        answered.clear()
        burn(value * 1000.0)

if mode == "spill":
    threading.Thread(target=spill_when_idle, daemon=True).start()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: Nagle + delayed ACK would add 40 ms
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        conn = upstream()
        try:
            conn.request("POST", self.path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            local.conn = None
            raise
        if mode == "delay":
            time.sleep(value / 1000.0)
        elif mode == "slowstart" and time.monotonic() - started < value:
            time.sleep(0.005 * (1.0 - (time.monotonic() - started) / value))
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.getheader("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
        self.wfile.flush()
        if mode == "spill":
            last_answer[0] = time.monotonic()
            answered.set()
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def proxy_gateway(name: str, port: int, mode: str, value: float, loadgen_cpu: int | None = None) -> dict:
    """A catalog entry (``stacks/<name>/gateway.yaml`` data) for the proxy in ``mode``."""
    extra = [] if loadgen_cpu is None else [str(loadgen_cpu)]
    return {
        "name": name,
        "title": f"proxy {mode} {value:g}",
        "role": "gateway",
        "version": "0.0.0",
        "source": "tests/gateways.py",
        "local": {
            "port": port,
            # argv[1] marks the process so the leak check can find it.
            "command": ["python3", "-c", PROXY, "aigw-bench-fake", "{{ port }}", "{{ mock_url }}", mode, f"{value:g}",
                        *extra],
            "ready": {"path": "/health", "timeout_s": 20},
        },
    }
