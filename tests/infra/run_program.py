"""Run the real Pulumi program (__main__.py) for one stack config under Pulumi's mocks; print JSON.

One process per stack (the Pulumi runtime is process-global). Output: every registered resource
(type, name, inputs as the engine received them, parent, explicit dependencies, ignored changes), the stack's
exports (and which are secret), warnings, or the error that stopped the program; and the registrations in
the order the engine received them, with the URN the engine gives each (the mock monitor's own URNs leave
out grandparents' types), its parent's URN and its aliases as sent (tests/infra/preview.py plans an
update from one program's graph to another's with them).

    python tests/infra/run_program.py Pulumi.kong.yaml [--set key=value] [--secret key=value]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import runpy
import sys
import traceback
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.chdir(REPO)

import pulumi  # noqa: E402

RESOURCES: dict[str, dict] = {}
REGISTRATIONS: list[dict] = []
WARNINGS: list[str] = []
EXPORTS: dict[str, pulumi.Output] = {}

# Outputs of the remote (multi-language) components, which mocks register as one resource each.
REMOTE_OUTPUTS = {
    "awsx:ec2:Vpc": {"vpcId": "vpc-0abc", "publicSubnetIds": ["subnet-pub-a", "subnet-pub-b"],
                     "privateSubnetIds": ["subnet-priv-a", "subnet-priv-b"]},
    "eks:index:Cluster": {"kubeconfigJson": '{"apiVersion": "v1", "kind": "Config"}',
                          "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1."
                                             "amazonaws.com/id/ABC",
                          "oidcProviderUrl": "https://oidc.eks.us-east-1.amazonaws.com/id/ABC"},
    "eks:index:ManagedNodeGroup": {},
}


def _urn_key(resource: pulumi.Resource) -> str:
    return f"{getattr(resource, '_aigw_type', '?')}::{getattr(resource, '_aigw_name', '?')}"


_original_init = pulumi.Resource.__init__


def _recording_init(self, t, name, custom=False, props=None, opts=None, *args, **kwargs):
    self._aigw_type, self._aigw_name = t, name
    deps = []
    if opts is not None and opts.depends_on is not None:
        items = opts.depends_on if isinstance(opts.depends_on, list) else [opts.depends_on]
        deps = [_urn_key(d) for d in items if isinstance(d, pulumi.Resource)]
    parent = _urn_key(opts.parent) if opts is not None and opts.parent is not None else None
    RESOURCES.setdefault(f"{t}::{name}", {"type": t, "name": name, "inputs": None})
    ignore = list(opts.ignore_changes or []) if opts is not None else []
    RESOURCES[f"{t}::{name}"].update({"parent": parent, "depends_on": deps, "custom": bool(custom),
                                      "ignore_changes": ignore})
    return _original_init(self, t, name, custom, props, opts, *args, **kwargs)


pulumi.Resource.__init__ = _recording_init


def _without_resource_references() -> None:
    """The mock monitor deserializes resource references by constructing resources on its own thread's
    event loop, which breaks runs with remote components (eks, awsx). Declining the feature makes the
    SDK send plain ids and URNs instead; dependencies are recorded separately (_recording_init)."""
    from pulumi.runtime import mocks
    from pulumi.runtime.proto import resource_pb2

    original_supports = mocks.MockMonitor.SupportsFeature
    original_info = mocks.MockMonitor.GetDeploymentInfo

    def supports(self, request):
        if request.id == "resourceReferences":
            return type("SupportsFeatureResponse", (object,), {"hasSupport": False})
        return original_supports(self, request)

    def info(self, request):
        base = original_info(self, request)
        kept = [f for f in base.supportedFeatures if f != resource_pb2.RESOURCE_MONITOR_FEATURE_RESOURCE_REFERENCES]
        return resource_pb2.DeploymentInfo(supportedFeatures=kept)

    mocks.MockMonitor.SupportsFeature = supports
    mocks.MockMonitor.GetDeploymentInfo = info


def _recording_registrations() -> None:
    """Record each RegisterResource request as the engine would see it: URNs as pulumi/pulumi's
    resource.CreateURN makes them (the parent's whole qualified type, none for the root stack), the
    parent's URN, and the aliases (specs or URNs) the SDK sends when the monitor supports alias specs."""
    from pulumi.runtime import mocks

    original = mocks.MockMonitor.RegisterResource
    engine_urns: dict[str, str] = {}  # the mock monitor's URN -> the engine's

    def qualified(urn: str) -> str:
        return urn.split("::")[2]

    def register(self, request):
        response = original(self, request)
        parent = engine_urns.get(request.parent) if request.parent else None
        if parent is not None and qualified(parent) == "pulumi:pulumi:Stack":
            parent = None
        typ = request.type if parent is None else f"{qualified(parent)}${request.type}"
        urn = f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{typ}::{request.name}"
        engine_urns[response.urn] = urn
        aliases = []
        for alias in request.aliases:
            if alias.HasField("spec"):
                spec = alias.spec
                aliases.append({"name": spec.name, "type": spec.type, "stack": spec.stack, "project": spec.project,
                                "parent": engine_urns.get(spec.parentUrn, spec.parentUrn) or None,
                                "no_parent": spec.noParent})
            else:
                aliases.append({"urn": engine_urns.get(alias.urn, alias.urn)})
        if request.type != "pulumi:pulumi:Stack":
            REGISTRATIONS.append({"urn": urn, "type": request.type, "name": request.name, "parent": parent,
                                  "aliases": aliases, "custom": request.custom})
        return response

    mocks.MockMonitor.RegisterResource = register


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        # Remote components' outputs are typed differently from their inputs: return only theirs.
        outputs = dict(REMOTE_OUTPUTS[args.typ]) if args.typ in REMOTE_OUTPUTS else dict(args.inputs)
        if args.typ.startswith("aws:") and "arn" not in outputs:
            outputs["arn"] = f"arn:aws:{args.typ.split(':')[1].split('/')[0]}::123456789012:{args.name}"
        if args.typ == "aws:s3/bucket:Bucket":  # S3 ARNs have no region or account
            outputs.setdefault("bucket", f"{args.name}-0abc")
            outputs["arn"] = f"arn:aws:s3:::{outputs['bucket']}"
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = "mock-" + "x" * (int(args.inputs["length"]) - 5)
        if args.typ == "kubernetes:core/v1:Service" and (args.inputs.get("spec") or {}).get("type") == "LoadBalancer":
            outputs["status"] = {"loadBalancer": {"ingress": [{"hostname": f"{args.name}.elb.amazonaws.com"}]}}
        entry = RESOURCES.setdefault(f"{args.typ}::{args.name}", {"type": args.typ, "name": args.name})
        entry["inputs"] = args.inputs
        return [f"{args.name}-id", outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:ssm/getParameter:getParameter":
            return {"name": args.args.get("name"), "value": "ami-0123456789abcdef0", "type": "String"}
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": "us-east-1", "region": "us-east-1", "id": "us-east-1"}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": "123456789012", "arn": "arn:aws:iam::123456789012:user/test", "userId": "x"}
        return {}


def _export(name: str, value) -> None:
    EXPORTS[name] = pulumi.Output.from_input(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stack_file", type=Path)
    parser.add_argument("--set", action="append", default=[], help="key=value (YAML value) to add or override")
    parser.add_argument("--secret", action="append", default=[], help="key=value stored as a secret")
    parser.add_argument("--unset", action="append", default=[])
    args = parser.parse_args()
    stack = args.stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
    config = (yaml.safe_load(args.stack_file.read_text()) or {}).get("config", {}) or {}
    secrets = []
    for item in args.secret:
        key, _, value = item.partition("=")
        config[f"aigw-bench:{key}"] = value
        secrets.append(f"aigw-bench:{key}")
    for item in args.set:  # applied last: a --set of a key replaces an earlier secret with plain text
        key, _, value = item.partition("=")
        config[f"aigw-bench:{key}"] = yaml.safe_load(value)
        secrets = [k for k in secrets if k != f"aigw-bench:{key}"]
    for key in args.unset:
        config.pop(f"aigw-bench:{key}", None)
        secrets = [k for k in secrets if k != f"aigw-bench:{key}"]
    flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    flat.setdefault("aws:region", "us-east-1")
    _without_resource_references()
    _recording_registrations()
    pulumi.runtime.set_mocks(Mocks(), project="aigw-bench", stack=stack, preview=False)
    pulumi.runtime.set_all_config(flat, secrets)
    pulumi.export = _export
    original_warn = pulumi.log.warn
    pulumi.log.warn = lambda msg, *a, **k: (WARNINGS.append(msg), original_warn(msg, *a, **k))[-1]

    result: dict = {"stack": stack}

    try:
        outputs_holder = {}

        @pulumi.runtime.test
        def run():
            runpy.run_path(str(REPO / "__main__.py"), run_name="__main__")
            names = list(EXPORTS)

            async def secret_flags():
                return {k: await o.is_secret() for k, o in EXPORTS.items()}

            flags = pulumi.Output.from_input(asyncio.ensure_future(secret_flags()))
            return pulumi.Output.all(pulumi.Output.all(*EXPORTS.values()), flags).apply(
                lambda v: outputs_holder.update(values=dict(zip(names, v[0], strict=True)), secret=v[1]))

        run()
        result["exports"] = outputs_holder["values"]
        result["secret_exports"] = sorted(k for k, flag in outputs_holder["secret"].items() if flag)
    except Exception as exc:  # the program's own error is the result under test
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    result["resources"] = list(RESOURCES.values())
    result["registrations"] = [{**r, "inputs": RESOURCES.get(f"{r['type']}::{r['name']}", {}).get("inputs")}
                               for r in REGISTRATIONS]
    result["warnings"] = WARNINGS
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
