"""A program's log as a terminal would have shown it: plain text for the report.

Gateways write for a terminal even into a file: colours, a cleared screen, and spinners that redraw
one line with carriage returns (Portkey 1.15.2 draws ten frames of "⠋ Starting AI Gateway..." before
its banner). In a report these are noise, or worse: the frames read as ten log lines. Rich (already
the CLI's) decodes the escape sequences; what follows the last carriage return of a line is what
the terminal kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.ansi import AnsiDecoder

# C0 control characters other than tab, and DEL, that remain once the escape sequences are decoded.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain_line(line: str) -> str:
    """One line (no newline in it) as the terminal showed it, without escape sequences."""
    line = line.removesuffix("\r")  # a CRLF line ending is not a redraw
    return _CONTROL.sub("", AnsiDecoder().decode_line(line).plain).rstrip()


def terminal_lines(text: str) -> list[str]:
    """``text`` split at newlines only (a carriage return redraws the line; it does not start one)."""
    return [plain_line(line) for line in text.split("\n")]


def plain_lines(lines: Iterable[str]) -> list[str]:
    """Lines recorded earlier (perhaps split at carriage returns too) made plain; empty ones dropped."""
    return [plain for line in lines for plain in terminal_lines(line) if plain]
