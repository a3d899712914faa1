"""What ``pulumi up`` would do to a deployed stack whose program changed: its steps, planned from the old
and the new program's registrations (tests/infra/run_program.py, under Pulumi's mocks), the way the engine
plans them, and what the Kubernetes provider then does with them.

The engine (pulumi/pulumi pkg/resource/deploy/step_generator.go):
- looks each new resource up by its URN first, then by its aliases in order (getOldResource); an old
  resource found is updated in place (or kept), and each old URN can be claimed once;
- a resource's aliases are its own (collapseAliasToUrn: unset name/type/parent mean the resource's own,
  a parent that was itself found under an alias means that alias, the root stack means no parent) and,
  when its parent was found under an alias, the same child under that old parent (generateAliases,
  inheritedChildAlias: the child's name keeps its parent-name prefix);
- creates what it finds nothing for, in registration order, and deletes the old resources nothing
  claimed only after the program's last registration (deployment_executor.go: performPostSteps ->
  GenerateDeletes, "not registered in the new snapshot").

pulumi-kubernetes >= 4.29 creates a new object with a client-side create, which the API server refuses
when an object of that kind, namespace and name exists (AlreadyExists; CHANGELOG 4.29.0,
provider/pkg/await/await.go at v4.32.0). So a create of an object that an old resource still holds
fails the update: ``conflicts`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROOT_STACK = "pulumi:pulumi:Stack"


def qualified_type(urn: str) -> str:
    return urn.split("::")[2]


def urn_name(urn: str) -> str:
    return urn.split("::", 3)[3]


def create_urn(name: str, typ: str, parent: str | None, project: str, stack: str) -> str:
    """resource.CreateURN: the parent's whole qualified type, then the resource's own."""
    qualified = typ if parent is None else f"{qualified_type(parent)}${typ}"
    return f"urn:pulumi:{stack}::{project}::{qualified}::{name}"


def _stack_project(urn: str) -> tuple[str, str]:
    parts = urn.split("::")
    return parts[0].removeprefix("urn:pulumi:"), parts[1]


@dataclass
class Plan:
    matched: dict[str, str] = field(default_factory=dict)  # new URN -> the old URN it updates (or keeps)
    creates: list[str] = field(default_factory=list)  # new URNs, in registration order
    deletes: list[str] = field(default_factory=list)  # old URNs, after every create


def plan_update(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> Plan:
    """The steps of updating a stack deployed with the ``old`` registrations to the ``new`` ones."""
    olds = {r["urn"] for r in old}
    found_as: dict[str, str] = {}  # sg.aliases: new URN -> the old URN it was found under (only via an alias)
    claimed: set[str] = set()
    plan = Plan()
    for r in new:
        stack, project = _stack_project(r["urn"])

        def collapse(alias: dict[str, Any], r: dict[str, Any] = r, stack: str = stack, project: str = project) -> str:
            if alias.get("urn"):
                return alias["urn"]
            parent = alias.get("parent") or r["parent"]
            if alias.get("parent") and alias["parent"] in found_as:
                parent = found_as[alias["parent"]]
            if alias.get("no_parent") or (parent and qualified_type(parent) == ROOT_STACK):
                parent = None
            return create_urn(alias.get("name") or r["name"], alias.get("type") or r["type"], parent,
                              alias.get("project") or project, alias.get("stack") or stack)

        def inherited(child_type: str, child_name: str, parent_alias: str, r: dict[str, Any] = r) -> str:
            parent_name = urn_name(r["parent"])
            name = urn_name(parent_alias) + child_name[len(parent_name):] if child_name.startswith(parent_name) \
                else child_name
            s, p = _stack_project(parent_alias)
            return create_urn(name, child_type, parent_alias, p, s)

        aliases = [collapse(a) for a in r["aliases"]]
        if r["parent"] in found_as:
            parent_alias = found_as[r["parent"]]
            aliases.append(inherited(r["type"], r["name"], parent_alias))
            for own in list(aliases[:len(r["aliases"])]):
                aliases.append(inherited(qualified_type(own).split("$")[-1], urn_name(own), parent_alias))
        for candidate in [r["urn"], *aliases]:
            if candidate in olds:
                assert candidate not in claimed, f"{r['urn']} claims {candidate}, which another resource has"
                claimed.add(candidate)
                plan.matched[r["urn"]] = candidate
                if candidate != r["urn"]:
                    found_as[r["urn"]] = candidate
                break
        else:
            plan.creates.append(r["urn"])
    plan.deletes = [r["urn"] for r in old if r["urn"] not in claimed]
    return plan


# ------------------------------------------------------------------------------------------- Kubernetes
def k8s_identity(r: dict[str, Any]) -> tuple[str, str, str | None, str] | None:
    """(apiVersion, kind, namespace, metadata.name) of a Kubernetes object the provider manages; a Helm
    release as (helm.sh/v3, Release, namespace, name). None for anything else."""
    if not r["type"].startswith("kubernetes:") or not r.get("custom"):
        return None
    module, kind = r["type"].removeprefix("kubernetes:").rsplit(":", 1)
    group, version = module.split("/")
    inputs = r.get("inputs") or {}
    if kind == "Release" and group == "helm.sh":
        return "helm.sh/v3", "Release", inputs.get("namespace"), inputs.get("name")
    meta = inputs.get("metadata") or {}
    api_version = version if group == "core" else f"{group}/{version}"
    return api_version, kind, meta.get("namespace"), meta.get("name")


def conflicts(old: list[dict[str, Any]], new: list[dict[str, Any]], plan: Plan) -> list[str]:
    """Kubernetes objects the update would create (or re-create under a new identity) while an old
    resource still holds the same object: every old object exists until the deletes at the end."""
    held = {}
    for r in old:
        identity = k8s_identity(r)
        if identity is not None:
            held[identity] = r["urn"]
    old_by_urn = {r["urn"]: r for r in old}
    problems = []
    for r in new:
        identity = k8s_identity(r)
        if identity is None:
            continue
        before = plan.matched.get(r["urn"])
        if before is not None and k8s_identity(old_by_urn[before]) == identity:
            continue  # the same object, updated in place
        if identity in held:
            how = "created" if before is None else f"re-created (was {k8s_identity(old_by_urn[before])})"
            problems.append(f"{r['urn']} would be {how} as {identity} while {held[identity]} still holds it")
    return problems


POOL_LABEL = "aigw-bench/pool"


def workload_pool(r: dict[str, Any]) -> tuple[str | None, bool]:
    """(the node pool a Deployment's or a Helm release's pods need, whether ``pulumi up`` awaits them ready).

    Awaited unless skipped: a Deployment's ``pulumi.com/skipAwait: "true"`` annotation
    (pulumi-kubernetes provider/pkg/metadata/overrides.go: ReadyCondition), a release's ``skipAwait``
    (provider/pkg/provider/helm_release.go: client.Wait = !SkipAwait)."""
    inputs = r.get("inputs") or {}
    if r["type"] == "kubernetes:apps/v1:Deployment":
        pod = ((inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
        skip = ((inputs.get("metadata") or {}).get("annotations") or {}).get("pulumi.com/skipAwait") == "true"
        return (pod.get("nodeSelector") or {}).get(POOL_LABEL), not skip
    if r["type"] == "kubernetes:helm.sh/v3:Release":
        values = inputs.get("values") or {}
        return (values.get("nodeSelector") or {}).get(POOL_LABEL), not inputs.get("skipAwait")
    return None, False


def blocked_creates(old: list[dict[str, Any]], new: list[dict[str, Any]], plan: Plan) -> list[str]:
    """Workloads the update creates and waits for on a node pool an old workload keeps until the deletes at
    the end: with the mock taking its node's allocatable CPU, the new pod stays Pending and the update
    waits until it times out, before any delete."""
    deleted = {r["urn"] for r in old if r["urn"] in plan.deletes}
    held = {workload_pool(r)[0]: r["urn"] for r in old if r["urn"] in deleted and workload_pool(r)[0]}
    problems = []
    for r in new:
        pool, awaited = workload_pool(r)
        if r["urn"] in plan.creates and pool in held and awaited:
            problems.append(f"{r['urn']} is created and awaited on the {pool} pool while {held[pool]} still runs "
                            "there (deleted only after the last registration)")
    return problems
