"""The ``cloud:`` sections of the data folders: how a gateway (``stacks/<name>/gateway.yaml``) or a
mock (``mock_llm/<name>/mock.yaml``) is deployed on EKS. Validated when the entry is loaded, so a bad
chart version or a missing template fails with the file and the field before anything starts.

A gateway is a pinned Helm chart with a Jinja values template, or Kubernetes manifests from a
template, or nothing (the baseline, where k6 calls the mock directly). The program puts its own
internal NLB Service in front of the pods the ``selector`` names, so no chart needs to know about
AWS load balancers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from schema.base import Strict


def variant_namespace(namespace: str, variant: str) -> str:
    """Where a stack deploys its entry's variant ``variant`` (stack config ``variants``): a namespace of its own
    beside the entry's, so that each variant is its own gateway with its own NLB."""
    return f"{namespace}-{variant}"


class Chart(Strict):
    repo: str = Field(description="https chart repository, or oci://registry/path")
    name: str = Field(description="the chart's name in the repository")
    version: str = Field(description="the chart's exact version")


class Image(Strict):
    repository: str = Field(description="e.g. ghcr.io/berriai/litellm")
    tag: str = Field(description="an exact tag (never latest)")

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


class Metrics(Strict):
    port: int = Field(description="container port of the Prometheus endpoint")
    path: str = "/metrics"


class SecretSpec(Strict):
    type: str = Field("Opaque", description="the Kubernetes Secret's type (e.g. kubernetes.io/tls)")
    data: dict[str, str] = Field(description="key in the Kubernetes Secret -> secret stack config key")


class SecretHeader(Strict):
    config: str = Field(description="secret stack config key holding the value")
    format: str = Field("{value}", description="the header's value; {value} stands for the secret")


class CloudSpec(Strict):
    """How the gateway is deployed on EKS: a Helm chart, manifests, or nothing (the baseline)."""

    kind: Literal["helm", "manifests", "none"] = Field(description="helm: a chart and a values template; "
                                                                   "manifests: a template of Kubernetes objects; "
                                                                   "none: nothing deployed (the baseline)")
    namespace: str = Field("gateway", description="the gateway's Kubernetes namespace")
    chart: Chart | None = Field(None, description="helm: the pinned chart")
    image: Image | None = Field(None, description="the pinned image (helm and manifests)")
    port: int | None = Field(None, description="container port serving the OpenAI route")
    selector: dict[str, str] = Field(default_factory=dict, description="labels of the gateway pods")
    replicas: int = Field(1, ge=1, description="pods; the stack's CPU cap is spread over them")
    memory_per_replica: str = Field("4Gi", description="memory request = limit of each pod")
    values: str | None = Field(None, description="Helm values template, relative to the entry folder")
    manifests: str | None = Field(None, description="manifests template (multi-document YAML)")
    files: dict[str, str] = Field(default_factory=dict, description="name -> template, rendered for the others")
    vars: dict[str, Any] = Field(default_factory=dict, description="extra template variables")
    metrics: Metrics | None = Field(None, description="scraped by the stack's Prometheus when set")
    required_config: list[str] = Field(default_factory=list, description="plain stack config keys the entry needs "
                                                                         "(pulumi config set KEY VALUE)")
    secrets: dict[str, SecretSpec] = Field(default_factory=dict, description="Kubernetes Secrets made from secret "
                                                                             "stack config (name -> spec)")
    secret_headers: dict[str, SecretHeader] = Field(
        default_factory=dict, description="headers k6 sends in the cloud with a secret value (e.g. the gateway's "
                                          "key), replacing request.headers of the same name; never written to results")

    @property
    def secret_config_keys(self) -> list[str]:
        """Every secret stack config key the entry needs (Kubernetes Secrets and secret headers)."""
        keys = [k for spec in self.secrets.values() for k in spec.data.values()]
        return list(dict.fromkeys(keys + [h.config for h in self.secret_headers.values()]))

    @model_validator(mode="after")
    def _complete(self) -> CloudSpec:
        if self.kind == "none":
            return self
        missing = [k for k in ("image", "port") if getattr(self, k) is None]
        if not self.selector:
            missing.append("selector")
        if self.kind == "helm" and (self.chart is None or self.values is None):
            missing += [k for k in ("chart", "values") if getattr(self, k) is None]
        if self.kind == "manifests" and self.manifests is None:
            missing.append("manifests")
        if missing:
            raise ValueError(f"kind {self.kind} needs {', '.join(missing)}")
        return self

    def templates(self) -> list[str]:
        """The template files the section names, relative to the entry's folder."""
        return [rel for rel in [self.values, self.manifests, *self.files.values()] if rel]


class MockCloudSpec(Strict):
    """The ``cloud:`` section of ``mock_llm/<name>/mock.yaml``."""

    image: Image
    version: str | None = Field(None, description="what runs on EKS, when it differs from the local version")
    port: int = Field(ge=1, le=65535)
    namespace: str = "mock"
    chart: Chart | None = Field(None, description="a Helm chart (WireMock); none: the program's own Deployment")
    command: list[str] = Field(default_factory=list, description="the container's command (no chart)")
    vars: dict[str, Any] = Field(default_factory=dict, description="template variables of the config files")
