"""Headless Chromium (Debian's package) for rendering the HTML report in tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Flags for a sandboxed machine without network: no GPU, no background traffic, a fresh profile.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("no Chromium on PATH: run `make test` (it installs Debian's chromium) or "
                         "`apt-get install chromium`")


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120)


def dump_dom(html: Path, profile: Path) -> str:
    """The DOM after Chromium parsed and laid out the page."""
    out = _run(["--dump-dom", html.resolve().as_uri()], profile)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def screenshot(html: Path, png: Path, profile: Path, size: str = "1280,5200") -> Path:
    out = _run([f"--window-size={size}", f"--screenshot={png}", html.resolve().as_uri()], profile)
    assert out.returncode == 0 and png.exists(), out.stderr[-2000:]
    return png


# Measures the laid-out page in the browser and writes the result into the DOM, which --dump-dom returns:
# every visible element that reaches past the viewport's edges without a scroll container around it, every
# chart wider than its box, where the scorecard's table ends, and how wide the document is.
_MEASURE = """
<script>
(() => {
  const vw = document.documentElement.clientWidth, vh = window.innerHeight;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const scrolls = (el) => { for (let p = el.parentElement; p; p = p.parentElement) {
    const x = getComputedStyle(p).overflowX; if (x === 'auto' || x === 'scroll') return true; } return false; };
  const overflow = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('svg') !== el && el.closest('svg')) continue;  // an SVG clips what it draws: the svg counts
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || scrolls(el)) continue;
    if (r.right > vw + 0.5 || r.left < -0.5) {
      overflow.push(name(el) + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
    }
  }
  const charts = [...document.querySelectorAll('figure')].map((f) => {
    const box = f.getBoundingClientRect(), svg = f.querySelector('svg');
    const r = svg ? svg.getBoundingClientRect() : box;
    return {id: f.id, fits: r.left >= box.left - 0.5 && r.right <= box.right + 0.5 && r.width > 0,
            width: Math.round(r.width), box: Math.round(box.width)};
  });
  const card = document.querySelector('#scorecard table');
  const wraps = [...document.querySelectorAll('.table-wrap')].map((w) => ({
    scrolls: w.scrollWidth > w.clientWidth + 1, hint: getComputedStyle(w.previousElementSibling || w).display !== 'none'
      && (w.previousElementSibling || {}).className === 'scroll-hint'}));
  parent.postMessage(JSON.stringify({viewport: [vw, vh], document_width: document.documentElement.scrollWidth,
    overflow, charts, wraps, scorecard_bottom: card ? card.getBoundingClientRect().bottom : null}), '*');
})();
</script>
"""
# Chromium's window is at least 500 px wide: the report is laid out in a frame of the exact size instead, and
# the frame's measurement comes back as a message.
_FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="{src}" width="{width}" height="{height}" style="border:0;display:block"></iframe>
<pre id="aigw-layout"></pre>
<script>window.addEventListener('message', (e) => {{ document.getElementById('aigw-layout').textContent = e.data; }});
</script></body></html>
"""


def layout(html: Path, width: int, height: int, work: Path) -> dict:
    """The report laid out by Chromium in a viewport of width x height (CSS px): see _MEASURE. The report itself
    has no script: a copy with the measuring script appended is what the frame opens."""
    import json
    import re
    from html import unescape

    work.mkdir(parents=True, exist_ok=True)
    page = work / f"report-{width}.html"
    page.write_text(html.read_text().replace("</body>", _MEASURE + "</body>"))
    frame = work / f"frame-{width}.html"
    frame.write_text(_FRAME.format(src=page.name, width=width, height=height))
    out = _run([f"--window-size={max(width, 800)},{height + 200}", "--virtual-time-budget=5000", "--dump-dom",
                frame.resolve().as_uri()], work / f"profile-{width}")
    assert out.returncode == 0, out.stderr[-2000:]
    found = re.search(r'<pre id="aigw-layout">(.+?)</pre>', out.stdout, flags=re.S)
    assert found, "the measuring script did not report"
    return json.loads(unescape(found[1]))
