"""Jinja rendering of catalog strings (commands, env, URLs, headers, config files).

Undefined variables are errors, so a typo in a catalog entry fails before anything starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from schema.errors import ConfigError

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def render_str(template: str, context: Mapping[str, Any], where: str) -> str:
    try:
        return _ENV.from_string(template).render(**context)
    except jinja2.TemplateError as exc:
        raise ConfigError(f"{where}: cannot render {template!r}: {exc}") from None


def render_file(path: Path, context: Mapping[str, Any]) -> str:
    try:
        return _ENV.from_string(path.read_text()).render(**context)
    except jinja2.TemplateError as exc:
        raise ConfigError(f"{path}: cannot render: {exc}") from None


def render_list(items: list[str], context: Mapping[str, Any], where: str) -> list[str]:
    return [render_str(item, context, f"{where}[{i}]") for i, item in enumerate(items)]


def render_map(items: Mapping[str, str], context: Mapping[str, Any], where: str) -> dict[str, str]:
    return {key: render_str(value, context, f"{where}.{key}") for key, value in items.items()}


def render_vars(items: Mapping[str, Any], context: Mapping[str, Any], where: str) -> dict[str, Any]:
    """An entry's ``vars``: strings (also inside lists) are templates, other values are kept as they are."""

    def one(value: Any, at: str) -> Any:
        if isinstance(value, str):
            return render_str(value, context, at)
        if isinstance(value, list):
            return [one(v, f"{at}[{i}]") for i, v in enumerate(value)]
        return value

    return {key: one(value, f"{where}.{key}") for key, value in items.items()}
