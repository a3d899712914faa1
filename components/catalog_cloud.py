"""The ``cloud:`` section of a catalog entry: how the gateway is deployed on EKS.

Generic over gateways: a pinned Helm chart with a Jinja values template, or Kubernetes manifests
from a template, or nothing (the baseline, where k6 calls the mock directly). The program puts its
own internal NLB Service in front of the pods the ``selector`` names, so no chart needs to know
about AWS load balancers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aigw_bench.catalog import Gateway
from aigw_bench.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Chart(_Strict):
    repo: str = Field(description="https chart repository, or oci://registry/path")
    name: str
    version: str


class Image(_Strict):
    repository: str
    tag: str

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


class Metrics(_Strict):
    port: int
    path: str = "/metrics"


class SecretSpec(_Strict):
    type: str = "Opaque"
    data: dict[str, str] = Field(description="key in the Kubernetes Secret -> secret stack config key")


class SecretHeader(_Strict):
    config: str = Field(description="secret stack config key holding the value")
    format: str = Field("{value}", description="the header's value; {value} stands for the secret")


class CloudSpec(_Strict):
    kind: Literal["helm", "manifests", "none"]
    namespace: str = "gateway"
    chart: Chart | None = None
    image: Image | None = None
    port: int | None = Field(None, description="container port serving the OpenAI route")
    selector: dict[str, str] = Field(default_factory=dict, description="labels of the gateway pods")
    replicas: int = Field(1, ge=1)
    memory_per_replica: str = "4Gi"
    values: str | None = Field(None, description="Helm values template, relative to the entry folder")
    manifests: str | None = Field(None, description="manifests template (multi-document YAML)")
    files: dict[str, str] = Field(default_factory=dict, description="name -> template, rendered for the others")
    vars: dict[str, str] = Field(default_factory=dict, description="extra template variables")
    metrics: Metrics | None = None
    required_config: list[str] = Field(default_factory=list)
    secrets: dict[str, SecretSpec] = Field(default_factory=dict)
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


def cloud_spec(entry: Gateway) -> CloudSpec:
    """Validate an entry's cloud section, naming the file and the field on error."""
    where = entry.entry_dir / "gateway.yaml"
    if entry.cloud is None:
        raise ConfigError(f"{where}: no cloud section: {entry.name} cannot be deployed to AWS")
    try:
        spec = CloudSpec.model_validate(entry.cloud)
    except ValidationError as err:
        problems = "; ".join(f"cloud.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{where}: {problems}") from None
    for rel in [spec.values, spec.manifests, *spec.files.values()]:
        if rel and not (entry.entry_dir / rel).is_file():
            raise ConfigError(f"{where}: cloud template {rel} not found")
    return spec
