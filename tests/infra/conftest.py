"""Runs the Pulumi program under mocks, one subprocess per stack configuration, cached per session.

tests/infra/run_program.py does the running; these fixtures hand its JSON to the tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("run_program.py")
# Where the stack files are: the repository, or (tests/test_fork.py) a fork's copy with stacks added.
STACKS_DIR = Path(os.environ.get("AIGW_BENCH_STACK_FILES") or REPO).resolve()

# Values a user adds with `pulumi config set [--secret]` before `pulumi up`: on every stack their
# own address range for the API endpoint (documentation range here), and per stack its secrets.
USER_CIDR = "198.51.100.0/24"
EVERY_STACK: tuple[str, ...] = ("--set", f'publicAccessCidrs=["{USER_CIDR}"]')
STACK_EXTRAS: dict[str, tuple[str, ...]] = {
    "litellm": ("--secret", "litellmMasterKey=sk-test-master-key"),
    "litellm-policies": ("--secret", "litellmMasterKey=sk-test-master-key"),
    "kong-konnect": ("--set", "konnectControlPlane=abc123.us.cp0.konghq.com",
                     "--set", "konnectTelemetry=abc123.us.tp0.konghq.com",
                     "--secret", "konnectCert=-----BEGIN CERTIFICATE-----test",
                     "--secret", "konnectKey=-----BEGIN PRIVATE KEY-----test"),
}
SHIPPED = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACKS_DIR.glob("Pulumi.*.yaml"))


@cache
def _run(stack_file: str, args: tuple[str, ...]) -> dict:
    out = subprocess.run([sys.executable, str(RUNNER), stack_file, *args], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _entry_extras(stack_file: Path) -> tuple[str, ...]:
    """For a stack without STACK_EXTRAS (a fork's): a test value for every plain and secret config key its
    catalog entry asks for, so that any stack file of a fork runs here too."""
    import yaml

    from schema.catalog import load_catalog

    gateway = (yaml.safe_load(stack_file.read_text()).get("config") or {}).get("aigw-bench:gateway")
    cat = load_catalog()
    cloud = cat.get(gateway).cloud if gateway in cat else None
    if cloud is None:
        return ()
    plain = [a for key in cloud.required_config for a in ("--set", f"{key}=test-{key}")]
    return (*plain, *(a for key in cloud.secret_config_keys for a in ("--secret", f"{key}=test-{key}")))


def run_stack(stack: str, *args: str, base: str | None = None) -> dict:
    """The program for ``Pulumi.<base or stack>.yaml`` plus extra ``--set/--secret/--unset`` arguments."""
    name = base or stack
    path = STACKS_DIR / f"Pulumi.{name}.yaml"
    extras = STACK_EXTRAS[name] if name in STACK_EXTRAS else _entry_extras(path)
    return _run(str(path), EVERY_STACK + extras + args)


@pytest.fixture(scope="session")
def shipped() -> dict[str, dict]:
    """Every shipped stack, run in parallel (each in its own process)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(SHIPPED, pool.map(run_stack, SHIPPED), strict=True))
    for name, result in results.items():
        assert "error" not in result, f"{name}: {result.get('error')}\n{result.get('traceback', '')[-2000:]}"
    return results


class Program:
    """Queries over one run's resources."""

    def __init__(self, result: dict):
        self.result = result
        self.resources = result["resources"]
        self.by_key = {f"{r['type']}::{r['name']}": r for r in self.resources}

    def of_type(self, typ: str) -> list[dict]:
        return [r for r in self.resources if r["type"] == typ]

    def one(self, typ: str, name: str) -> dict:
        return self.by_key[f"{typ}::{name}"]

    def inputs(self, typ: str, name: str) -> dict:
        return self.one(typ, name)["inputs"] or {}

    def depends_on(self, key: str, target: str, seen: set[str] | None = None) -> bool:
        """True if ``key`` depends on ``target`` directly or through other explicit dependencies.

        Parents are not followed: a component's dependencies do not order its children's deletion."""
        seen = seen if seen is not None else set()
        if key in seen or key not in self.by_key:
            return False
        seen.add(key)
        r = self.by_key[key]
        deps = list(r.get("depends_on") or [])
        return target in deps or any(self.depends_on(d, target, seen) for d in deps)

    @property
    def exports(self) -> dict:
        return self.result["exports"]


@pytest.fixture(scope="session")
def programs(shipped) -> dict[str, Program]:
    return {name: Program(result) for name, result in shipped.items()}


@pytest.fixture(scope="session")
def wiremock_kong() -> Program:
    """The kong stack with WireMock as its mock (`pulumi config set mock wiremock`)."""
    result = run_stack("kong", "--set", "mock=wiremock")
    assert "error" not in result, result.get("error")
    return Program(result)
