"""A gateway stack's outputs, read through the Pulumi Automation API, validated into one model.

The Pulumi program (``__main__.py``) exports these names; this module is the only place the
post-deploy stage learns where things are. Every failure says which piece is missing and how to
get it: the Pulumi CLI, AWS credentials, the stack, or an output.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from schema.catalog import REPO_DIR
from schema.cloud import variant_namespace
from schema.errors import CloudError

INSTALL_PULUMI = "install it from https://www.pulumi.com/docs/iac/download-install/ and run `pulumi login`"
INSTALL_AWS_CLI = ("install it from https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html: "
                   "the cluster's kubeconfig (pulumi-eks) runs `aws eks get-token`, so `pulumi up` and `pulumi "
                   "destroy` fail half-way without it")
TOOLS = {"pulumi": ("the Pulumi CLI", INSTALL_PULUMI), "aws": ("the AWS CLI", INSTALL_AWS_CLI)}


def require_tool(command: str) -> None:
    """Fail with how to install it when a command-line tool the cloud target runs is missing."""
    if shutil.which(command) is None:
        what, how = TOOLS[command]
        raise CloudError(f"{what} is not installed (no `{command}` on PATH): {how}")


class MockControl(BaseModel):
    """Where the mock's pacing profile lives in the cluster (stack output ``mock_control``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    namespace: str
    configmap: str
    settings_key: str
    deployment: str
    settings_annotation: str = Field(description="pod-template annotation holding the settings' sha256")
    # Its ClusterIP Service: `cloud run` reads and clears a fault plan's records there, through the API
    # server's service proxy. Stacks deployed before fault plans on EKS export none.
    service: str | None = None
    port: int | None = None
    fallback: MockControl | None = Field(None, description="its second, healthy instance (the faults suite)")


class StackOutputs(BaseModel):
    """What the post-deploy stage needs from a stack (``pulumi stack output``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    stack: str
    gateway_name: str = Field(description="catalog entry deployed by the stack")
    gateway_version: str
    gateway_url: str = Field(description="base URL of the gateway's internal NLB, reachable from the runner")
    variant_urls: dict[str, str] = Field(default_factory=dict, description="the deployed variants of the entry "
                                         "(stack config `variants`): name -> base URL of the variant's own NLB")
    mock_url: str = Field(description="base URL of the mock's internal NLB")
    mock_cluster_url: str = Field(description="the mock as the gateway reaches it (in-cluster service URL)")
    mock_fallback_cluster_url: str = Field("", description="the mock's second, healthy instance in-cluster (the "
                                           "`resilient` configurations' fallback); '': not deployed")
    k6_runner_instance_ids: list[str] = Field(min_length=1)
    k6_runner_ami: str | None = None
    results_bucket: str
    region: str
    cluster_name: str
    prometheus_url: str | None = Field(None, description="in-VPC Prometheus, queried from the runner")
    gateway_namespace: str = "gateway"
    gateway_secret_headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="headers with secret values k6 must send (a secret stack output)")
    mock_namespace: str = "mock"
    # The mock as deployed. Stacks deployed before the fast mock existed export none of these: WireMock.
    mock_name: str = "wiremock"
    mock_version: str | None = None
    mock_image: str | None = None
    mock_profile: str = "instant"
    mock_profiles: list[str] = Field(default_factory=lambda: ["instant"])
    mock_control: MockControl | None = None
    kubeconfig: SecretStr | None = Field(None, description="the cluster's kubeconfig (a secret output)")
    hourly_cost_usd: float | None = None
    price_table: str | None = None
    instance_types: dict[str, str] = Field(default_factory=dict)
    chart_versions: dict[str, str] = Field(default_factory=dict)
    # The k6-operator engine (aigw_bench/cloud/operator_engine.py): in-cluster names.
    k6_operator: dict[str, Any] = Field(default_factory=dict)
    prometheus_service: dict[str, Any] = Field(default_factory=dict)
    grafana_service: dict[str, Any] = Field(default_factory=dict)

    def for_variant(self, variant: str | None) -> StackOutputs:
        """The stack as a session of target ENTRY+VARIANT sees it: the variant's NLB and namespace (where its
        pods' CPU and memory are read) in place of the entry's."""
        if variant is None:
            return self
        if variant not in self.variant_urls:
            raise CloudError(f"stack '{self.stack}' deploys no variant '{variant}' of {self.gateway_name} (it deploys "
                             f"{', '.join(self.variant_urls) or 'none'})")
        return self.model_copy(update={"gateway_url": self.variant_urls[variant],
                                       "gateway_namespace": variant_namespace(self.gateway_namespace, variant)})

    @field_validator("kubeconfig", mode="before")
    @classmethod
    def _kubeconfig_text(cls, value: Any) -> Any:
        return json.dumps(value) if isinstance(value, dict) else value

    @field_validator("k6_runner_instance_ids", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @classmethod
    def from_outputs(cls, stack: str, outputs: dict[str, Any]) -> StackOutputs:
        data = dict(outputs)
        if "k6_runner_instance_ids" not in data and "k6_runner_instance_id" in data:
            data["k6_runner_instance_ids"] = data["k6_runner_instance_id"]
        try:
            return cls.model_validate({**data, "stack": stack})
        except ValidationError as err:
            missing = [".".join(str(p) for p in e["loc"]) for e in err.errors() if e["type"] == "missing"]
            other = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                     for e in err.errors() if e["type"] != "missing"]
            parts = []
            if missing:
                parts.append(f"missing output{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
            if other:
                parts.append("; ".join(other))
            raise CloudError(
                f"stack '{stack}': {'; '.join(parts)}. Was `pulumi up` run to completion on this stack, with this "
                f"version of the program? (`pulumi stack output -s {stack}` lists what it has)"
            ) from None


def read_stack_outputs(stack: str, work_dir: Path = REPO_DIR) -> StackOutputs:
    """Outputs of a deployed stack via the Automation API (the real one; needs the Pulumi CLI)."""
    require_tool("pulumi")
    import pulumi.automation as auto  # imported late: the local target never needs it

    try:
        ws_stack = auto.select_stack(stack_name=stack, work_dir=str(work_dir))
        raw = ws_stack.outputs()
    except auto.StackNotFoundError:
        raise CloudError(f"stack '{stack}' does not exist: create it with `pulumi stack init {stack}` and "
                         f"deploy it with `pulumi up -s {stack}` (see docs/cloud.md)") from None
    except auto.CommandError as exc:
        text = str(exc)
        if "login" in text.lower() or "credentials" in text.lower():
            raise CloudError(f"Pulumi cannot reach its backend: run `pulumi login` ({text.strip()[:300]})") from None
        raise CloudError(f"reading the outputs of stack '{stack}' failed: {text.strip()[:500]}") from None
    except FileNotFoundError:
        raise CloudError(f"the Pulumi CLI could not be started: {INSTALL_PULUMI}") from None
    return StackOutputs.from_outputs(stack, {k: v.value for k, v in raw.items()})


def check_aws_credentials(session: Any) -> str:
    """The caller's AWS account, or a clear error if there are no usable credentials."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return session.client("sts").get_caller_identity()["Account"]
    except NoCredentialsError:
        raise CloudError("no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), "
                         "or run `aws configure` / `aws sso login`") from None
    except (ClientError, BotoCoreError) as exc:
        raise CloudError(f"AWS credentials were rejected: {exc}") from None
