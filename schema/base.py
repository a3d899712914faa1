"""What every data model of the project shares: where the repository is, the strict pydantic base,
YAML files read with errors that name the file, and validation errors worded for the terminal."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from schema.errors import ConfigError

REPO_DIR = Path(__file__).resolve().parents[1]


class Strict(BaseModel):
    """Unknown keys are errors and values are frozen: a typo in a data file must not silently change a
    benchmark, and a loaded definition must not change while a run uses it."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def present(value: Any) -> bool:
    """A value that was measured: not None, not NaN, not pandas' NA (compared by identity, so that
    this module needs no pandas)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return type(value).__name__ != "NAType"


def format_validation_error(path: Path, err: ValidationError, what: str = "catalog entry") -> str:
    lines = [f"{path}: invalid {what}"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  - {where}: {e['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def parse_file(path: Path, parse: Callable[[str], Any], kind: str) -> Any:
    """A data file parsed (``kind``: "YAML", "JSON"), with errors that name the file."""
    try:
        return parse(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"{path}: not valid {kind}: {exc}") from None


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that names a key twice. Plain YAML keeps the last and drops
    the first without a word: two `variants:` blocks of one entry, left by a merge, lost every fault
    configuration of the first."""


def _unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<:` merges are overridden on purpose
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"found the key {key!r} twice in one mapping",
                                                    key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file (and the line of a key given twice)."""
    data = parse_file(path, lambda text: yaml.load(text, Loader=UniqueKeyLoader), "YAML")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def named_mappings(path: Path, key: str) -> dict[str, dict[str, Any]]:
    """The mapping under ``key`` of a YAML file, name -> mapping (profiles, fault plans), non-empty; errors name
    the file and the entry."""
    raw = load_yaml(path).get(key)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: expected a non-empty '{key}' mapping")
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: {key}.{name}: expected a mapping")
    return raw
