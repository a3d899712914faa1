"""The stack's configuration (``Pulumi.<stack>.yaml``), parsed once into a validated model.

Every problem is reported before any resource is declared, with the config key as the user wrote
it (``aigw-bench:gatewayCpuLimit``) and the values that would be allowed.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from components.cloud_variants import VariantError, parse_cpu, resolve_variants, services_of
from components.prices import CostLine, allocatable_cpu, estimate, price_table, total
from components.registry_mirrors import check_mirror
from components.subnets import PRIVATE_MASK, subnet_layout
from schema.catalog import Catalog, Gateway
from schema.cloud import CloudSpec, MockCloudSpec
from schema.mock import (
    DEFAULT_MOCK,
    DEFAULT_PROFILE,
    MockDefinition,
    PacingProfile,
    list_mocks,
    load_mock,
    load_profiles,
)

NAMESPACE = "aigw-bench"
DEFAULT_LOADGEN_NODES = 2
SECRET_CONFIG_NAMES = frozenset({"litellmMasterKey", "konnectCert", "konnectKey"})
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\.(nano|micro|small|medium|large|[0-9]*xlarge|metal)$")
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:[0-9]{1,5})?$")


class ConfigValidationError(Exception):
    """Raised before any resource exists; the message names the key and the allowed values."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


def _instance_type(value: str) -> str:
    if not isinstance(value, str) or not _INSTANCE_TYPE.match(value):
        raise ValueError(f"{value!r} is not an EC2 instance type of the form family.size (e.g. c5.4xlarge)")
    known = price_table().instances
    if value not in known:
        raise ValueError(f"{value!r} is not in the pinned price table; known types: {', '.join(sorted(known))} "
                         "(add it to components/data/prices-us-east-1.yaml)")
    return value


class NodePool(_Model):
    instance_type: str
    count: int = Field(1, ge=1, le=20)
    disk_gib: int = Field(50, ge=20, le=1000)

    _check_type = field_validator("instance_type")(classmethod(lambda cls, v: _instance_type(v)))


class LoadgenPool(_Model):
    """The k6-operator's runner pods, one per node (TestRun ``separate``). Only with the operator."""
    instance_type: str = "c6i.4xlarge"  # the published run's k6 machine, as the EC2 runner
    count: int | None = Field(None, ge=0, le=20, description="nodes; default 2 with the operator, else none")
    disk_gib: int = Field(30, ge=20, le=500)

    _check_type = field_validator("instance_type")(classmethod(lambda cls, v: _instance_type(v)))


class Nodes(_Model):
    # The published benchmark's sizes: c5.4xlarge for the gateway and the mock, a small tools node.
    gateway: NodePool = NodePool(instance_type="c5.4xlarge")
    mock: NodePool = NodePool(instance_type="c5.4xlarge")
    tools: NodePool = NodePool(instance_type="m5.xlarge")
    loadgen: LoadgenPool = LoadgenPool()


class K6Operator(_Model):
    """The optional k6-operator engine (components/k6_operator.py): the EC2 runner stays the default."""
    enabled: bool = False


class Runner(_Model):
    instance_type: str = "c6i.4xlarge"  # the published run's k6 machine
    count: int = Field(1, ge=1, le=10, description="several runners split the load (k6 execution segments)")
    disk_gib: int = Field(30, ge=20, le=500)
    ami: str | None = Field(None, pattern=r"^ami-[0-9a-f]{8,17}$",
                            description="pinned AMI; default: the latest AL2023 at the first `pulumi up`")

    _check_type = field_validator("instance_type")(classmethod(lambda cls, v: _instance_type(v)))


class StackConfig(_Model):
    gateway: str
    kubernetes_version: Literal["1.32"] = "1.32"
    availability_zones: int = Field(2, ge=2, le=3)  # before vpc_cidr: its check needs the count
    vpc_cidr: str = "10.42.0.0/16"
    nat_gateways: Literal["single", "one-per-az"] = "single"
    public_access_cidrs: list[str] = Field(default_factory=list)
    api_endpoint_open_to_internet: bool = False  # the explicit opt-out of publicAccessCidrs
    control_plane_logs: bool = False
    nodes: Nodes = Nodes()
    gateway_cpu_limit: float = Field(12.0, gt=0, description="total CPU limit across gateway replicas")
    gateway_replicas: int | None = Field(None, ge=1, le=200)
    # The mock implementation (a folder of mock_llm/ with a cloud section) and the pacing profile it
    # starts with; `aigw-bench cloud run` switches the profile as its steps need (fast mock only).
    mock: str = DEFAULT_MOCK
    mock_profile: str = DEFAULT_PROFILE
    mock_cpu: float | None = Field(None, gt=0)
    runner: Runner = Runner()
    k6_operator: K6Operator = K6Operator()
    results_retention_days: int = Field(14, ge=1, le=3650)
    # Registry host -> mirror URL for every node's image pulls (components/registry_mirrors.py), e.g.
    # {docker.io: https://mirror.example.com}: Docker Hub limits anonymous pulls per NAT address.
    registry_mirrors: dict[str, str] = Field(default_factory=dict)
    # The entry's variants deployed beside it, each a gateway of its own (components/cloud_variants.py): what
    # `cloud run --suite policies` measures as targets ENTRY+VARIANT.
    variants: list[str] = Field(default_factory=list)
    # Plain values a catalog entry asks for (required_config), e.g. Konnect endpoints.
    konnect_control_plane: str | None = None
    konnect_telemetry: str | None = None

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, value: str, info: ValidationInfo) -> str:
        _cidr(value)
        zones = info.data.get("availability_zones")
        if zones is None:  # the zone count itself is invalid and reported
            return value
        try:
            subnet_layout(value, zones)
        except ValueError as exc:
            largest = PRIVATE_MASK - 1 - math.ceil(math.log2(zones))
            raise ValueError(f"{exc}; allowed with {zones} availability zones: a /{largest} or larger "
                             "(e.g. 10.42.0.0/16)") from None
        return value

    @field_validator("mock")
    @classmethod
    def _mock(cls, value: str) -> str:
        allowed = cloud_mocks()
        if value not in allowed:
            raise ValueError(f"unknown mock {value!r}; allowed: {', '.join(allowed)}")
        return value

    @field_validator("mock_profile")
    @classmethod
    def _mock_profile(cls, value: str, info: ValidationInfo) -> str:
        known = load_profiles()
        if value not in known:
            raise ValueError(f"unknown pacing profile {value!r}; allowed: {', '.join(known)} (mock_llm/profiles.yaml)")
        mock = info.data.get("mock")
        if mock is not None and value not in load_mock(mock).profiles:
            raise ValueError(f"the {mock} mock cannot serve {value!r}; allowed with it: "
                             f"{', '.join(load_mock(mock).profiles)}")
        return value

    @field_validator("registry_mirrors")
    @classmethod
    def _mirrors(cls, values: dict[str, str]) -> dict[str, str]:
        for registry in values:
            if not _REGISTRY.match(registry):
                raise ValueError(f"{registry!r} is not a registry host (docker.io, quay.io, ghcr.io, host:port)")
        return {registry: check_mirror(url) for registry, url in values.items()}

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for v in values:
            _cidr(v)
        return values


def cloud_mocks() -> list[str]:
    """The mocks of mock_llm/ that can be deployed to EKS (a ``cloud:`` section)."""
    return [name for name in list_mocks() if load_mock(name).cloud is not None]


def _cidr(value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IPv4 CIDR block like 10.0.0.0/16 ({exc})") from None


class Settings(BaseModel):
    """Everything the program needs, validated: the config, the catalog entry and derived sizes."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    stack: str
    config: StackConfig
    entry: Gateway
    cloud: CloudSpec
    replicas: int
    cpu_per_replica: float
    secrets: dict[str, str]  # k8s Secret name -> {data key: config key} flattened as JSON strings
    open_endpoint: bool
    mock: MockDefinition
    mock_spec: MockCloudSpec
    mock_profile: PacingProfile
    variants: list[Gateway] = Field(default_factory=list)  # config.variants applied, each in its own namespace

    @property
    def workers(self) -> int:
        return max(1, math.floor(self.cpu_per_replica))

    @property
    def loadgen_nodes(self) -> int:
        return loadgen_nodes(self.config)


def loadgen_nodes(config: StackConfig) -> int:
    """Nodes of the load-generator pool: 0 (no pool) unless the operator engine is enabled."""
    if not config.k6_operator.enabled:
        return 0
    count = config.nodes.loadgen.count
    return DEFAULT_LOADGEN_NODES if count is None else count


def cost_lines(config: StackConfig, gateway_kind: str) -> list[CostLine]:
    """The stack's hourly cost from the pinned price table (exported by the program, and estimated
    by `aigw-bench cloud matrix` from the stack file before anything is deployed)."""
    nodes = config.nodes
    groups = {role: (p.instance_type, p.count, p.disk_gib)
              for role, p in (("gateway", nodes.gateway), ("mock", nodes.mock), ("tools", nodes.tools))}
    if generators := loadgen_nodes(config):
        groups["load-generator"] = (nodes.loadgen.instance_type, generators, nodes.loadgen.disk_gib)
    return estimate(
        kubernetes_version=config.kubernetes_version, node_groups=groups,
        runners=(config.runner.instance_type, config.runner.count, config.runner.disk_gib),
        nat_gateways=1 if config.nat_gateways == "single" else config.availability_zones,
        # mock, Prometheus, the gateway and one per deployed variant
        load_balancers=2 + (0 if gateway_kind == "none" else 1 + len(config.variants)))


def _key(loc: tuple[Any, ...]) -> str:
    return f"{NAMESPACE}:" + ".".join(str(p) for p in loc)


def parse(raw: dict[str, Any], stack: str, catalog: Catalog, secret_keys: set[str]) -> Settings:
    """Validate raw config values (camelCase keys without the namespace) for one stack."""
    allowed = {f.alias or n for n, f in StackConfig.model_fields.items()}
    secret_names = SECRET_CONFIG_NAMES
    unknown = sorted(set(raw) - allowed - secret_names)
    if unknown:
        raise ConfigValidationError(f"unknown config key(s) {', '.join(_key((u,)) for u in unknown)}; "
                                    f"allowed: {', '.join(sorted(allowed | secret_names))}")
    if "gateway" not in raw:
        raise ConfigValidationError(f"{_key(('gateway',))} is required; allowed: {', '.join(_cloud_names(catalog))}")
    plain = {k: v for k, v in raw.items() if k not in secret_names}
    try:
        config = StackConfig.model_validate(plain)
    except ValidationError as err:
        problems = [f"{_key(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in err.errors()]
        raise ConfigValidationError("invalid stack configuration:\n  " + "\n  ".join(problems)) from None

    _check_api_endpoint(config)
    _check_loadgen(config)
    if config.gateway not in catalog or catalog.get(config.gateway).cloud is None:
        raise ConfigValidationError(f"{_key(('gateway',))}: unknown gateway {config.gateway!r}; "
                                    f"allowed: {', '.join(_cloud_names(catalog))}")
    entry = catalog.get(config.gateway)
    cloud = entry.deployment

    for key in cloud.required_config:
        if not getattr(config, _snake(key), None):
            raise ConfigValidationError(f"{_key((key,))} is required by the {entry.name} entry "
                                        f"(set it with `pulumi config set {key} <value>`)")
    for config_key in cloud.secret_config_keys:
        if config_key not in raw or config_key not in secret_keys:
            why = "is missing" if config_key not in raw else "must be a secret"
            raise ConfigValidationError(
                f"{_key((config_key,))} {why}: the {entry.name} entry needs it as a secret "
                f"(`pulumi config set --secret {config_key} ...`)")

    try:
        variants = resolve_variants(entry, config.variants, catalog)
    except VariantError as exc:
        raise ConfigValidationError(f"{_key(('variants',))}: {exc}") from None
    replicas = config.gateway_replicas or cloud.replicas
    cpu_per_replica = config.gateway_cpu_limit / replicas
    pool = config.nodes.gateway
    node_cpu = allocatable_cpu(price_table().instances[pool.instance_type].vcpus)
    # Every deployed variant is a gateway of the same size on the same pool.
    gateways = 1 + len(variants)
    per_node = math.ceil(replicas * gateways / pool.count)
    if cloud.kind != "none" and per_node * cpu_per_replica > node_cpu:
        most = math.floor(node_cpu / per_node * replicas * 1000) / 1000
        nodes = math.ceil(replicas * gateways / math.floor(node_cpu / cpu_per_replica)) if cpu_per_replica <= node_cpu \
            else None
        more = f"nodes.gateway.count {nodes}" if nodes else "more gateway nodes: nodes.gateway.count"
        each = f" for each of {gateways} gateways (the entry and {len(variants)} variant(s))" if variants else ""
        raise ConfigValidationError(
            f"{_key(('gatewayCpuLimit',))}: {config.gateway_cpu_limit:g} CPUs over {replicas} replica(s){each} on "
            f"{pool.count} {pool.instance_type} node(s) needs {per_node * cpu_per_replica:g} CPUs per node, but a "
            f"node can allocate {node_cpu:g}; allowed: at most {most:g} (or {more})")
    _check_services_fit(config, variants)
    if config.mock_cpu is not None:
        mock_cpu = allocatable_cpu(price_table().instances[config.nodes.mock.instance_type].vcpus)
        if config.mock_cpu > mock_cpu:
            raise ConfigValidationError(f"{_key(('mockCpu',))}: {config.mock_cpu:g} CPUs do not fit a "
                                        f"{config.nodes.mock.instance_type} node; allowed: at most {mock_cpu:g}")
    secrets = {name: json.dumps(s.data) for name, s in cloud.secrets.items()}
    mock = load_mock(config.mock)
    return Settings(stack=stack, config=config, entry=entry, cloud=cloud, replicas=replicas,
                    cpu_per_replica=cpu_per_replica, secrets=secrets,
                    open_endpoint=config.api_endpoint_open_to_internet, mock=mock, mock_spec=mock.deployment,
                    mock_profile=load_profiles()[config.mock_profile], variants=variants)


# CPUs of the tools pool kept for its own workloads (CoreDNS asks for 2 x 0.1; Prometheus, Grafana, the load
# balancer controller and the k6-operator run without requests) when backing services are placed there.
TOOLS_RESERVED_CPU = 1.0


def _check_services_fit(config: StackConfig, variants: list[Gateway]) -> None:
    """The backing services of the deployed variants (one pod per variant and service) fit their pool: a pod
    that cannot be scheduled would leave `pulumi up` waiting for the Helm release until it times out."""
    tools = sum(parse_cpu(s.cloud.cpu) for v in variants for s in services_of(v) if s.cloud is not None)
    pool = config.nodes.tools
    room = allocatable_cpu(price_table().instances[pool.instance_type].vcpus) * pool.count - TOOLS_RESERVED_CPU
    if tools > room:
        raise ConfigValidationError(
            f"{_key(('variants',))}: the backing services of {len(variants)} variant(s) ask for {tools:g} CPUs on the "
            f"tools pool, which has {room:g} to spare ({pool.count} {pool.instance_type}); allowed: fewer variants, "
            "or more tools nodes (`pulumi config set --path nodes.tools.count N`)")


def _check_api_endpoint(config: StackConfig) -> None:
    """The EKS API endpoint is public (`pulumi up` and kubectl reach it from the user's machine):
    it must be limited to the user's addresses unless they opt out explicitly."""
    if config.public_access_cidrs and config.api_endpoint_open_to_internet:
        raise ConfigValidationError(
            f"{_key(('apiEndpointOpenToInternet',))} and {_key(('publicAccessCidrs',))} contradict each other: "
            "set one of them (`pulumi config rm apiEndpointOpenToInternet`)")
    if not config.public_access_cidrs and not config.api_endpoint_open_to_internet:
        raise ConfigValidationError(
            f"{_key(('publicAccessCidrs',))} is required: the EKS API endpoint is public (pulumi and kubectl reach "
            "it from your machine) and is limited to these address ranges. Find your public address with "
            "`curl -s https://checkip.amazonaws.com` (behind a VPN or a corporate proxy, ask for its egress range) "
            "and set it: `pulumi config set --path 'publicAccessCidrs[0]' 203.0.113.7/32`. To leave the endpoint "
            "open to 0.0.0.0/0 (still authenticated) instead: `pulumi config set apiEndpointOpenToInternet true`.")


def stack_file_hourly_cost(path: Path, catalog: Catalog) -> float:
    """A stack's hourly cost from its ``Pulumi.<stack>.yaml`` alone (sizes and the gateway's kind),
    before it is deployed. Secrets are not needed for it and are not read."""
    try:
        raw = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigValidationError(f"{path}: cannot be read ({exc})") from None
    prefix = f"{NAMESPACE}:"
    plain = {k[len(prefix):]: v for k, v in raw.items()
             if k.startswith(prefix) and not (isinstance(v, dict) and set(v) == {"secure"})}
    plain = {k: v for k, v in plain.items() if k not in SECRET_CONFIG_NAMES}
    try:
        config = StackConfig.model_validate(plain)
    except ValidationError as err:
        problems = [f"{_key(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in err.errors()]
        raise ConfigValidationError(f"{path}: invalid stack configuration:\n  " + "\n  ".join(problems)) from None
    if config.gateway not in catalog or catalog.get(config.gateway).cloud is None:
        raise ConfigValidationError(f"{path}: {_key(('gateway',))}: unknown gateway {config.gateway!r}")
    return total(cost_lines(config, catalog.get(config.gateway).deployment.kind))


def _check_loadgen(config: StackConfig) -> None:
    """A load-generator pool is only made for the operator engine: sizing one without it would
    silently do nothing."""
    if config.nodes.loadgen.count and not config.k6_operator.enabled:
        raise ConfigValidationError(
            f"{_key(('nodes', 'loadgen', 'count'))}: {config.nodes.loadgen.count} load-generator node(s) asked for, "
            f"but {_key(('k6Operator', 'enabled'))} is not true: the pool exists only for the k6-operator engine. "
            "Enable it (`pulumi config set --path k6Operator.enabled true`) or remove the count "
            "(`pulumi config rm --path nodes.loadgen.count`).")


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def _cloud_names(catalog: Catalog) -> list[str]:
    return [g.name for g in catalog if g.cloud is not None]


def read_raw_config() -> tuple[dict[str, Any], set[str]]:
    """All ``aigw-bench:*`` values of the current stack (JSON-decoded), and which of them are secrets.

    The language host hands config over either through the runtime's config map or through the
    PULUMI_CONFIG environment; both are read."""
    import pulumi.runtime.config as runtime_config

    prefix = f"{NAMESPACE}:"
    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    raw: dict[str, Any] = {}
    for full_key, value in merged.items():
        if not full_key.startswith(prefix):
            continue
        try:
            raw[full_key[len(prefix):]] = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            raw[full_key[len(prefix):]] = value
    secret = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    return raw, {k[len(prefix):] for k in secret if k.startswith(prefix)}
