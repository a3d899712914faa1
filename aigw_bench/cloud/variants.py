"""Variant targets (ENTRY+VARIANT) on deployed stacks: each runs on the gateway its stack deployed for it
(stack config ``variants``, output ``variant_urls``). A variant the stack did not deploy is refused before
anything runs, with the commands that deploy it."""

from __future__ import annotations

from collections.abc import Callable

from aigw_bench.cloud.outputs import StackOutputs
from schema.catalog import Gateway
from schema.errors import ConfigError


def refuse_missing_variants(targets: list[Gateway], stacks: dict[str, StackOutputs],
                            not_runnable: Callable[[Gateway], str | None]) -> None:
    """Every variant target that can run (its edition has it, the cloud can deploy it) has its gateway on its
    entry's stack; otherwise one message per stack naming the variants and the `pulumi config set` commands."""
    missing: dict[str, list[str]] = {}
    for t in targets:
        if t.variant is None or t.unsupported is not None or not_runnable(t) is not None:
            continue
        out = stacks[t.entry]
        if t.variant not in out.variant_urls:
            missing.setdefault(out.stack, []).append(t.variant)
    if not missing:
        return
    lines = []
    for stack, names in missing.items():
        out = next(o for o in stacks.values() if o.stack == stack)
        first = len(out.variant_urls)
        sets = " && ".join(f"pulumi config set -s {stack} --path 'variants[{first + i}]' {n}"
                           for i, n in enumerate(names))
        have = ", ".join(out.variant_urls) or "none"
        lines.append(f"stack '{stack}' does not deploy the {out.gateway_name} variant(s) {', '.join(names)} (it "
                     f"deploys: {have}). Deploy them: {sets} && pulumi up -s {stack}; or run only the deployed ones "
                     f"with --policy {','.join(out.variant_urls) or '...'}")
    raise ConfigError("\n".join(lines))
