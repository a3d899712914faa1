"""Log lines as a terminal showed them (analysis/logtext.py), with Portkey 1.15.2's own start-up bytes
(build/start-server.js: console.clear(), ten spinner frames redrawn with "\\r", a coloured banner)."""

from __future__ import annotations

import pytest

from analysis.logtext import plain_lines, terminal_lines

pytestmark = pytest.mark.pure

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
PORTKEY = ("\x1b[2J\x1b[3J\x1b[H" + "".join(f"\r{f} Starting AI Gateway..." for f in SPINNER) + "\r"
           + "\x1b[1m🚀 Your AI Gateway is running at:\x1b[0m\n"
           + "   \x1b[1;4;32mhttp://localhost:8787\x1b[0m\n"
           + "\n\x1b[32m✨ Ready for connections!\x1b[0m\n"
           + "Unhandled exception\r\n")


def test_what_a_terminal_kept_of_portkeys_start():
    assert [line for line in terminal_lines(PORTKEY) if line] == [
        "🚀 Your AI Gateway is running at:", "   http://localhost:8787", "✨ Ready for connections!",
        "Unhandled exception"]


def test_lines_recorded_before_are_made_plain():
    """outcome.json files written before this kept lines split at every "\\r", escapes included."""
    recorded = PORTKEY.splitlines()
    plain = plain_lines(recorded)
    assert not any("\x1b" in line or "\r" in line for line in plain)
    assert plain[-4:] == ["🚀 Your AI Gateway is running at:", "   http://localhost:8787", "✨ Ready for connections!",
                          "Unhandled exception"]
