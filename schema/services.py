"""Backing services: servers a gateway's configuration needs (Redis for shared counters and caches), started
by the rig beside the gateway like a process of its own.

```
services/
  redis/service.yaml   Redis 7 from Debian: loopback only, no persistence, readiness by `redis-cli ping`
```

A service is data, like a catalog entry: a folder with a ``service.yaml`` (what to install, the argv, the
port, the readiness check, how to read the installed version, and, under ``cloud:``, the pinned image a stack
runs it from beside a variant that needs it: components/backing_service.py). An entry or a variant names the services it
needs (``local.services``, ``variants.<name>.services``); its templates see each as
``services.<name>.host|port|url``. The run records the pinned and installed version in the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from schema.base import Strict, format_validation_error, load_yaml
from schema.catalog import SERVICE_FILE, InstallSpec, VersionProbe, services_dir
from schema.cloud import Image
from schema.errors import ConfigError

SERVICE_HOST = "127.0.0.1"  # loopback only: a service is never reachable from another machine
SERVICE_ROLE = "service:"  # a service's role among a session's processes and resources: service:redis


class ServiceReady(Strict):
    """How the rig knows the service accepts work: a command that succeeds (and prints ``expect``), or, without
    a command, a TCP connection to its port."""

    command: list[str] | None = Field(None, description="argv (templates) run until it exits 0 and prints "
                                                        "`expect`, e.g. redis-cli ping")
    expect: str | None = Field(None, description="text the command must print (e.g. PONG)")
    timeout_s: float = Field(30.0, gt=0, le=300, description="seconds before the service is 'not ready'")


class ServiceCloud(Strict):
    """How a stack runs the service on EKS (``cloud:``): one pod from a pinned image behind a ClusterIP Service
    (reachable inside the cluster only), in the namespace of each deployed variant that names it."""

    image: Image = Field(description="the pinned image (an exact tag), the same upstream release as `version`")
    port: int = Field(ge=1, le=65535, description="the container's port, also the ClusterIP Service's")
    args: list[str] = Field(default_factory=list, description="the container's arguments (the image's entrypoint "
                                                               "runs them)")
    cpu: str = Field("250m", description="CPU request = limit")
    memory: str = Field("256Mi", description="memory request = limit")
    pool: Literal["tools"] = Field("tools", description="the node pool it runs on: tools, so that it never shares "
                                   "the gateway's CPUs (their cap is the gateway's own, as in the published setup)")
    ready: list[str] = Field(min_length=1, description="readiness probe: a command run in the container")

    def host(self, name: str, namespace: str) -> str:
        return f"{name}.{namespace}.svc.cluster.local"


class ServiceDefinition(Strict):
    """One backing service (``services/<name>/service.yaml``)."""

    name: str = Field(description="the folder's name; what entries and variants list under `services`")
    title: str
    version: str = Field(description="the pinned version, recorded (with the installed one) in the manifest")
    source: str = Field(description="where the artefact comes from (the Debian package)")
    kind: Literal["redis", "postgres", "other"] = Field("other", description="what it speaks (for people and for "
                                                                             "the URL templates get)")
    install: InstallSpec = Field(description="what `aigw-bench setup` installs when it is missing (apt)")
    port: int = Field(ge=1024, le=65535, description="where it listens on 127.0.0.1 (checked free before start)")
    command: list[str] = Field(min_length=1, description="argv (templates: port, host, work_dir)")
    ready: ServiceReady = Field(default_factory=ServiceReady)
    version_probe: VersionProbe
    stop_timeout_s: float = Field(10.0, gt=0, le=120, description="SIGTERM, then SIGKILL after this many seconds")
    cloud: ServiceCloud | None = Field(None, description="how a cloud stack runs it; none: a variant that needs it "
                                                         "cannot be deployed to the cloud")
    entry_dir: Path = Field(exclude=True)

    @model_validator(mode="after")
    def _apt_only(self) -> ServiceDefinition:
        if self.install.kind != "apt":
            raise ValueError("a service is installed from Debian (install.apt with provides)")
        return self

    @property
    def path(self) -> Path:
        return self.entry_dir / SERVICE_FILE

    def url(self) -> str:
        return f"{self._scheme()}://{SERVICE_HOST}:{self.port}"

    def template_vars(self) -> dict[str, str | int]:
        """What a gateway's templates see as ``services.<name>``."""
        return {"host": SERVICE_HOST, "port": self.port, "url": self.url()}

    def cloud_template_vars(self, namespace: str) -> dict[str, str | int]:
        """What a gateway's cloud templates see as ``services.<name>``: the in-cluster Service in ``namespace``
        (the same names as on this machine)."""
        assert self.cloud is not None
        host = self.cloud.host(self.name, namespace)
        return {"host": host, "port": self.cloud.port, "url": f"{self._scheme()}://{host}:{self.cloud.port}"}

    def _scheme(self) -> str:
        return {"redis": "redis", "postgres": "postgresql"}.get(self.kind, "tcp")


def list_services(root: Path | None = None) -> list[str]:
    root = root or services_dir()
    return sorted(d.name for d in root.iterdir() if (d / SERVICE_FILE).is_file()) if root.is_dir() else []


def load_service(name: str, root: Path | None = None, needed_by: str = "") -> ServiceDefinition:
    """``services/<name>/service.yaml`` (or $AIGW_BENCH_SERVICES); an unknown name fails naming who needs it
    and what exists."""
    root = root or services_dir()
    entry_dir = (root / name).resolve()
    path = entry_dir / SERVICE_FILE
    if not path.is_file():
        who = f"{needed_by}: " if needed_by else ""
        raise ConfigError(f"{who}unknown service '{name}' (no {path}). Known services: "
                          f"{', '.join(list_services(root)) or 'none'}")
    try:
        service = ServiceDefinition.model_validate({**load_yaml(path), "entry_dir": entry_dir})
    except ValidationError as err:
        raise ConfigError(format_validation_error(path, err)) from None
    if service.name != name:
        raise ConfigError(f"{path}: name '{service.name}' must equal its folder name '{name}'")
    return service
