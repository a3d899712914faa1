"""The gateway catalog: one folder per target under ``stacks/``, each holding a ``gateway.yaml``.

The catalog is data. The harness (local runner, k6 rendering, the Pulumi program) reads these
definitions and never special-cases a gateway by name, so adding a gateway means adding a folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from schema.base import REPO_DIR, Strict, format_validation_error, load_yaml
from schema.cloud import CloudSpec
from schema.errors import ConfigError
from schema.locks import Lock, read_lock

DEFAULT_CATALOG_DIR = REPO_DIR / "stacks"
SERVICES_DIR = REPO_DIR / "services"  # backing services (schema/services.py): services/<name>/service.yaml
SERVICES_ENV = "AIGW_BENCH_SERVICES"  # another services directory (as AIGW_BENCH_CATALOG for the catalog)
SERVICE_FILE = "service.yaml"


def services_dir() -> Path:
    """$AIGW_BENCH_SERVICES, else this repository's ``services/``."""
    return Path(os.environ.get(SERVICES_ENV) or SERVICES_DIR).resolve()
CATALOG_ENV = "AIGW_BENCH_CATALOG"  # another catalog directory for every command (and the test suite)
ENTRY_FILE = "gateway.yaml"

# Releases that must never be installed (supply-chain incidents), per ecosystem and package. Checked
# against every package an entry's lock file pins and against the entry's ``version`` for the
# packages its lock installs (or, without a lock, a package of the entry's own name), whatever the
# entry is called.
KNOWN_BAD_RELEASES: dict[str, dict[str, dict[str, str]]] = {
    "pypi": {
        "litellm": {
            "1.82.7": "malicious PyPI upload (credential stealer), BerriAI/litellm#24518",
            "1.82.8": "malicious PyPI upload (credential stealer, .pth payload), BerriAI/litellm#24518",
            "1.107.0": "reported compromised",
        },
    },
    "npm": {},
}

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _string_as_list(cls: Any, value: Any) -> Any:
    """A list of strings may be written as one string (a field validator of several models)."""
    return [value] if isinstance(value, str) else value


class InstallSpec(Strict):
    """What the harness installs for a local process (``aigw-bench setup``). Exactly one of npm, pip, apt.
    npm and pip installs are keyed by their lock files (shared by every entry with the same lock);
    apt installs are the system's.
    """

    npm: str | None = Field(None, description="folder (relative to the entry) with package.json and package-lock.json")
    pip: str | None = Field(None, description="hashed requirements file (relative to the entry), as pip-compile "
                                              "--generate-hashes writes it")
    apt: list[str] | None = Field(None, description="Debian packages, installed with apt-get (as root or with sudo)")
    provides: list[str] | None = Field(None, description="apt only: binaries on PATH or absolute paths of files that "
                                                         "prove the packages are there (a string or a list)")
    _provides_as_list = field_validator("provides", mode="before")(_string_as_list)

    @model_validator(mode="after")
    def _exactly_one(self) -> InstallSpec:
        chosen = [k for k in ("npm", "pip", "apt") if getattr(self, k)]
        if len(chosen) != 1:
            raise ValueError(f"set exactly one of npm, pip, apt (got {chosen or 'none'})")
        if self.apt and not self.provides:
            raise ValueError("apt installs need 'provides': the binaries or files that show the packages are there")
        return self

    @property
    def kind(self) -> str:
        return "npm" if self.npm else "pip" if self.pip else "apt"

    def lock(self, entry_dir: Path, who: str) -> Lock | None:
        """What the lock files (npm, pip) pin; None for apt (Debian's packages are the distribution's)."""
        if self.pip:
            return read_lock("pip", self.pip, entry_dir, who)
        if self.npm:
            return read_lock("npm", self.npm, entry_dir, who)
        return None


class ReadySpec(Strict):
    """An HTTP probe that says the process accepts traffic."""

    path: str = Field("/", description="polled on the entry's base URL until it answers")
    method: Literal["GET", "HEAD"] = "GET"
    status: int = Field(200, description="the status that means ready")
    timeout_s: float = Field(60.0, gt=0, le=900, description="seconds to wait before the target is 'not ready'")


class VersionProbe(Strict):
    """A command whose output carries the installed version (first regex group)."""

    command: list[str] = Field(description="argv (templates) printing the installed version")
    regex: str = Field(description="searched in stdout + stderr; its first group is the version")

    @field_validator("regex")
    @classmethod
    def _one_group(cls, value: str) -> str:
        if re.compile(value).groups < 1:
            raise ValueError("the regex needs one capturing group around the version")
        return value


class LocalSpec(Strict):
    """How the target runs as a process on this machine (the local target). Strings in ``command``,
    ``env``, ``base_url``, ``vars``, request headers and the config templates are Jinja templates (their
    variables: docs/catalog.md, "Template variables"; built in aigw_bench/local/context.py).
    """

    runnable: bool = Field(True, description="false: the target runs in the cloud only (local runs record it as "
                                             "not runnable, with the reason)")
    reason: str | None = Field(None, description="why the target cannot run here (required if not runnable)")
    install: InstallSpec | None = Field(None, description="what to install first (aigw-bench setup); none: "
                                                          "nothing, or only what the machine already has")
    port: int | None = Field(None, ge=1024, le=65535, description="where the process listens on 127.0.0.1 "
                                                                 "(required with a command)")
    command: list[str] | None = Field(None, description="argv of the process (templates); no command: the target "
                                                        "is the mock itself (the baseline)")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment of the process (templates)")
    config_files: dict[str, str] = Field(
        default_factory=dict, description="file name in the work dir -> Jinja template relative to the entry"
    )
    ready: ReadySpec = Field(default_factory=ReadySpec, description="the readiness probe")
    base_url: str = Field("http://127.0.0.1:{{ port }}", description="where the request path is appended "
                                                                     "(a template)")
    vars: dict[str, Any] = Field(
        default_factory=dict, description="extra template variables (strings in them are templates too)")
    version_probe: VersionProbe | None = Field(None, description="how to read the installed version; recorded "
                                                                "beside the pinned one in every result")
    stop_timeout_s: float = Field(10.0, gt=0, le=120, description="SIGTERM, then SIGKILL after this many seconds")
    services: list[str] = Field(default_factory=list, description="backing services (services/<name>/) started "
                                "before the process, on its CPUs; templates see services.<name>.host|port|url")

    @model_validator(mode="after")
    def _consistent(self) -> LocalSpec:
        if not self.runnable:
            if not self.reason:
                raise ValueError("a target that is not runnable locally needs a 'reason'")
            return self
        if self.command is not None and self.port is None:
            raise ValueError("a target with a command needs the 'port' it listens on")
        if self.command is not None and not self.command:
            raise ValueError("'command' is empty")
        return self


class RequestSpec(Strict):
    """How the load generator addresses this target. The body is the same for every target."""

    path: str = Field("/v1/chat/completions", description="the OpenAI chat route, possibly under a prefix")
    model: str = Field("gpt-4o-mini", description="the body's model (the mock answers any)")
    headers: dict[str, str] = Field(default_factory=dict, description="sent with every request (templates: e.g. a "
                                                                      "key, a routing header with {{ mock_url }})")

    @field_validator("path")
    @classmethod
    def _openai_route(cls, value: str) -> str:
        # Same work for every gateway: the OpenAI chat route, possibly under a prefix.
        if not value.startswith("/") or not value.endswith("/chat/completions"):
            raise ValueError("must be an absolute path ending in /chat/completions (the OpenAI chat route)")
        return value

_VARIANT_SEP = "+"  # a variant's target name: ENTRY+VARIANT (litellm+auth), in results, tables and -t


class VariantCloud(Strict):
    """What a variant changes in the cloud section (the same entry deployed with another configuration)."""

    vars: dict[str, Any] = Field(default_factory=dict, description="merged over cloud.vars (e.g. the `policy` the "
                                 "local variant sets in vars, for the cloud templates)")
    values: str | None = Field(None, description="helm: another values template (relative to the entry)")
    manifests: str | None = Field(None, description="manifests: another manifests template")
    files: dict[str, str] = Field(default_factory=dict, description="merged over cloud.files (name -> template)")
    unsupported: str | None = Field(None, description="this variant cannot be deployed to the cloud: the reason (a "
                                    "stack's `variants` refuses it, naming it)")

    @model_validator(mode="after")
    def _unsupported_changes_nothing(self) -> VariantCloud:
        changes = [k for k in ("vars", "values", "manifests", "files") if getattr(self, k)]
        if self.unsupported is not None and changes:
            raise ValueError(f"a variant the cloud cannot deploy changes nothing there: drop {', '.join(changes)} "
                             "or 'unsupported'")
        return self


class WorksCheck(Strict):
    """A check that a variant's feature does its job, run under load by a suite's `works` step: the probe's
    requests go beside a steady load of the benchmark's own requests, and their answers are counted."""

    kind: Literal["auth", "limit", "cache", "guard", "observe"] = Field(
        description="auth: a missing and a wrong key are refused (401/403), the right one admitted; limit: twice "
                    "the limit offered, the limit admitted (within tolerance), the rest answered 429; cache: a "
                    "repeated request does not reach the mock, a changed one does; guard: a marked prompt is "
                    "refused, clean ones pass; observe: the gateway's own request counter moved by what was sent")
    header: str = Field("Authorization", description="auth: the header holding the key (the variant's value is the "
                                                     "right one)")
    wrong: str = Field("Bearer sk-aigw-bench-wrong-key", description="auth: the wrong key's header value")
    limit: int | None = Field(None, ge=1, description="limit: requests the gateway admits per `per_seconds`")
    per_seconds: float = Field(1.0, gt=0, le=3600, description="limit: the limit's window")
    seconds: float = Field(5.0, ge=1, le=120, description="limit: how long the probe offers twice the limit "
                                                         "(at most one window of a per-minute limit)")
    tolerance: float = Field(0.2, gt=0, lt=1, description="limit: admitted within this fraction of the limit")
    window: Literal["sliding", "minute"] = Field("sliding", description="limit: 'minute' when the gateway counts per "
                                                 "UTC wall-clock minute (the probe then starts where it does not "
                                                 "cross a minute's end)")
    model: str | None = Field(None, description="limit, cache: the model the probe's requests name (a deployment "
                                                "configured for the probe; the mock counts requests per model)")
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers of the probe's requests")
    repeats: int = Field(20, ge=2, le=1000, description="cache: how often the same request is sent")
    marker: str = Field("aigwblockedmarker", description="guard: the word the guard blocks")
    metrics_path: str | None = Field(None, description="observe: the gateway's metrics page (a path on its host)")
    counter: str | None = Field(None, description="observe: a regex whose first group, summed over every matching "
                                                  "line of the page, is the requests the gateway counted")
    slack: int = Field(0, ge=0, le=1000, description="observe: requests the counter may differ by (its own page "
                                                     "views, when it counts them)")
    settle_s: float = Field(0.0, ge=0, le=30, description="observe: seconds to wait after the load before reading the "
                                                          "counter (a gateway whose workers publish counts "
                                                          "periodically)")

    @model_validator(mode="after")
    def _complete(self) -> WorksCheck:
        if self.kind == "limit" and self.limit is None:
            raise ValueError("a limit check needs 'limit' (requests per per_seconds that the gateway admits)")
        if self.kind == "observe" and not (self.metrics_path and self.counter):
            raise ValueError("an observe check needs 'metrics_path' and 'counter'")
        if self.kind == "observe" and self.counter and re.compile(self.counter).groups < 1:
            raise ValueError("counter: the regex needs one capturing group around the count")
        if self.kind == "limit" and self.seconds > self.per_seconds and self.per_seconds > 1:
            raise ValueError("a limit check offers at most one window of a limit longer than a second")
        return self


class Variant(Strict):
    """One named configuration of an entry (a policy set, a fault-handling setting): the entry with these
    overrides merged over it, run by the suite that names the variants' ``suite``. Env and header values
    of null remove what the entry sets."""

    suite: str = Field(description="the suite whose runs include this variant (a suite file's `variants`), "
                                   "e.g. policies, faults")
    summary: str = Field(description="one line for people: what this configuration turns on")
    upstream: list[str] = Field(default_factory=list, description="what was read in the gateway's source or docs "
                                "at the pinned version to configure it (file and line)")
    _upstream_as_list = field_validator("upstream", mode="before")(_string_as_list)
    unsupported: str | None = Field(None, description="this edition cannot do it: the reason and its evidence "
                                    "(the run records the cell with it and starts nothing)")
    vars: dict[str, Any] = Field(default_factory=dict, description="template variables merged over local.vars")
    env: dict[str, str | None] = Field(default_factory=dict, description="merged over local.env (null removes one)")
    headers: dict[str, str | None] = Field(default_factory=dict, description="merged over request.headers (null "
                                           "removes one)")
    config_files: dict[str, str] = Field(default_factory=dict, description="merged over local.config_files (file "
                                         "name in the work dir -> template relative to the entry)")
    cloud: VariantCloud | None = Field(None, description="what it changes in the cloud section")
    works: list[WorksCheck] = Field(default_factory=list, description="checks that the feature does its job, run "
                                    "under load by the suite's `works` step")
    services: list[str] = Field(default_factory=list, description="backing services added to local.services "
                                "(services/<name>/: e.g. redis), started before the gateway")

    @field_validator("suite")
    @classmethod
    def _suite_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a suite's name: lower-case letters, digits and '-'")
        return value

    @model_validator(mode="after")
    def _unsupported_runs_nothing(self) -> Variant:
        changes = [k for k in ("vars", "env", "headers", "config_files", "cloud", "works", "services")
                   if getattr(self, k)]
        if self.unsupported is not None and changes:
            raise ValueError(f"an unsupported variant runs nothing: drop {', '.join(changes)} or 'unsupported'")
        return self

    def templates(self) -> list[str]:
        """Every template file this variant names (local and cloud), relative to the entry."""
        c = self.cloud
        cloud = [*(t for t in (c.values, c.manifests) if t), *c.files.values()] if c else []
        return [*self.config_files.values(), *cloud]


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged over ``base``; a key set to None in ``over`` is removed."""
    return {k: v for k, v in {**base, **over}.items() if v is not None}


class Gateway(Strict):
    """One catalog entry: a benchmark target."""

    name: str = Field(description="the folder's name: lower-case letters, digits, '-'; names the target "
                                  "everywhere (CLI, results, report)")
    title: str = Field(description="one line for people (list, report)")
    role: Literal["baseline", "floor", "gateway"] = Field(
        description="baseline: k6 straight to the mock; floor: a plain proxy; gateway: an AI gateway"
    )
    version: str = Field(description="the pinned version under test, written into every result")
    source: str = Field(description="where the pinned artefact comes from (package, image, repository)")
    description: str = Field("", description="what it does with a request, in a sentence or two")
    formerly: list[str] = Field(default_factory=list, description="names the entry had in an earlier release: "
                                "still accepted by -t/--targets (and a stack's gateway) for one release, "
                                "with a notice naming the new one")
    request: RequestSpec = Field(default_factory=RequestSpec, description="how k6 addresses it")
    local: LocalSpec = Field(description="how it runs on this machine")
    cloud: CloudSpec | None = Field(None, description="the deployment on EKS (Helm chart or manifests); none: "
                                                      "the target cannot be deployed to AWS")
    variants: dict[str, Variant] = Field(default_factory=dict, description="named configurations of this entry "
                                         "(name -> variant), run as targets ENTRY+NAME by the suite each names")
    entry_dir: Path = Field(exclude=True)
    # Set on an entry derived with a variant applied (:meth:`with_variant`), never read from the file.
    variant_of: str | None = Field(None, exclude=True)
    variant: str | None = Field(None, exclude=True)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use lower-case letters, digits and '-' (it names folders and stacks)")
        return value

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, value: dict[str, Variant]) -> dict[str, Variant]:
        bad = [n for n in value if not _NAME.match(n)]
        if bad:
            raise ValueError(f"variant name {bad[0]!r}: use lower-case letters, digits and '-'")
        return value

    @property
    def path(self) -> Path:
        return self.entry_dir / ENTRY_FILE

    @property
    def entry(self) -> str:
        """The catalog entry's name (for a derived variant: the entry it was derived from)."""
        return self.variant_of or self.name

    @property
    def unsupported(self) -> str | None:
        """Why this variant cannot run in this edition (None: it can, or it is no variant)."""
        if self.variant_of is None or self.variant is None:
            return None
        return self.variant_spec.unsupported

    @property
    def variant_spec(self) -> Variant:
        assert self.variant is not None
        return self.variants[self.variant]

    def variants_of(self, suite: str) -> list[str]:
        """The names of this entry's variants for ``suite``, in the file's order."""
        return [n for n, v in self.variants.items() if v.suite == suite]

    def with_variant(self, name: str) -> Gateway:
        """The entry with variant ``name`` merged over it, as a target of its own named ENTRY+NAME."""
        if self.variant is not None:
            raise ConfigError(f"{self.path}: {self.name} is already the variant '{self.variant}' of {self.entry}")
        v = self.variants.get(name)
        if v is None:
            known = ", ".join(f"{n} ({spec.suite})" for n, spec in self.variants.items()) or "none"
            raise ConfigError(f"{self.path}: target '{self.name}' has no variant '{name}' (its variants: {known})")
        local = self.local.model_copy(update={
            "vars": {**self.local.vars, **v.vars}, "env": _merged(self.local.env, v.env),
            "config_files": {**self.local.config_files, **v.config_files},
            "services": list(dict.fromkeys([*self.local.services, *v.services]))})
        request = self.request.model_copy(update={"headers": _merged(self.request.headers, v.headers)})
        cloud = self.cloud
        if cloud is not None and v.cloud is not None:
            c = v.cloud
            cloud = cloud.model_copy(update={"vars": {**cloud.vars, **c.vars}, "files": {**cloud.files, **c.files},
                                             "values": c.values or cloud.values,
                                             "manifests": c.manifests or cloud.manifests})
        return self.model_copy(update={
            "name": f"{self.name}{_VARIANT_SEP}{name}", "title": f"{self.title}, {name}", "local": local,
            "request": request, "cloud": cloud, "variant_of": self.name, "variant": name})

    @property
    def deployment(self) -> CloudSpec:
        """The cloud section, or an error naming the file when the entry has none."""
        if self.cloud is None:
            raise ConfigError(f"{self.entry_dir / ENTRY_FILE}: no cloud section: {self.name} cannot be deployed to AWS")
        return self.cloud


class Catalog:
    """All entries of a catalog directory, in a stable order (baseline, floor, gateways)."""

    def __init__(self, root: Path, entries: dict[str, Gateway]):
        self.root = root
        self._entries = entries

    @property
    def names(self) -> list[str]:
        order = {"baseline": 0, "floor": 1, "gateway": 2}
        return sorted(self._entries, key=lambda n: (order[self._entries[n].role], n))

    def __iter__(self):
        return (self._entries[n] for n in self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def renamed(self, names: list[str] | None) -> dict[str, str]:
        """The names given that are an entry's former name, each with the entry's name now."""
        former = {old: g.name for g in self._entries.values() for old in g.formerly}
        return {n: former[n] for n in names or [] if n not in self._entries and n in former}

    def get(self, name: str) -> Gateway:
        """An entry by name (or former name), or ENTRY+VARIANT: the entry with that variant applied."""
        entry, sep, variant = name.partition(_VARIANT_SEP)
        entry = self.renamed([entry]).get(entry, entry)
        try:
            found = self._entries[entry]
        except KeyError:
            raise ConfigError(
                f"unknown target '{entry}'. Known targets: {', '.join(self.names)} (catalog: {self.root})"
            ) from None
        return found.with_variant(variant) if sep else found

    def select(self, names: list[str] | None) -> list[Gateway]:
        """The named entries in the order given, or all of them; unknown names fail before anything runs."""
        if not names:
            return list(self)
        renamed = self.renamed(names)
        names = [renamed.get(n, n) for n in names]
        unknown = [n for n in names if n.partition(_VARIANT_SEP)[0] not in self._entries]
        if unknown:
            raise ConfigError(
                f"unknown target{'s' if len(unknown) > 1 else ''} {', '.join(repr(u) for u in unknown)}. "
                f"Known targets: {', '.join(self.names)} (catalog: {self.root})"
            )
        seen: list[str] = []
        for n in names:
            if n not in seen:
                seen.append(n)
        return [self.get(n) for n in seen]

    @property
    def baseline(self) -> Gateway | None:
        return next((g for g in self if g.role == "baseline"), None)


def variant_targets(targets: list[Gateway], suite: str | None,
                    chosen: list[str] | None) -> tuple[list[Gateway], list[str]]:
    """The targets a run measures: without a variants ``suite``, ``targets`` as they are; with one, each entry's
    variants of that suite (all, or those ``chosen``), the baseline as it is (the reference), a target named
    as ENTRY+VARIANT as it is. Also the entries left out (they declare no variant of the suite), for a notice.
    A chosen variant an entry does not declare fails, naming the target, the variant and the file."""
    if suite is None:
        if chosen:
            raise ConfigError(f"variants ({', '.join(chosen)}) are chosen for a suite that runs variants (e.g. "
                              "--suite policies); this run's suite or scenario runs the entries as they are")
        return targets, []
    declared = {n for t in targets for n in t.variants_of(suite)}
    unknown = [n for n in chosen or [] if n not in declared]
    if unknown:
        raise ConfigError(f"unknown {suite} variant{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(repr(u) for u in unknown)}: the selected targets declare "
                          f"{', '.join(sorted(declared)) or 'none'}")
    out: list[Gateway] = []
    left_out: list[str] = []
    for t in targets:
        names = t.variants_of(suite)
        if t.variant is not None or (t.role == "baseline" and not names):
            out.append(t)
            continue
        if not names:
            left_out.append(t.name)
            continue
        for n in chosen or names:
            if n not in names:
                raise ConfigError(f"{t.path}: target '{t.name}' does not declare the {suite} variant '{n}' "
                                  f"(it declares: {', '.join(names)})")
            out.append(t.with_variant(n))
    return out, left_out


def refuse_known_bad(path: Path, name: str, version: str, install: InstallSpec | None, entry_dir: Path) -> None:
    """A known-bad release in the lock file, or named by the entry's ``version``, is refused (with the
    file, the field and the reason), whatever the entry is called."""
    lock = install.lock(entry_dir, str(path)) if install else None
    field = f"local.install.{install.kind}" if install else ""
    for pkg in lock.packages if lock else []:
        bad = KNOWN_BAD_RELEASES.get(pkg.ecosystem, {}).get(pkg.name, {}).get(pkg.version)
        if bad:
            raise ConfigError(f"{path}: {field}: {lock.files[-1].relative_to(entry_dir)} installs {pkg}, which "
                              f"must not be installed: {bad}")
    # The packages the version may name: those the lock installs; without a lock, the entry's own name.
    if lock:
        candidates = [(p.ecosystem, p.name, f" (installed by {lock.files[-1].relative_to(entry_dir)})")
                      for p in lock.packages]
    else:
        candidates = [(eco, name, "") for eco in KNOWN_BAD_RELEASES]
    for ecosystem, package, via in candidates:
        bad = KNOWN_BAD_RELEASES.get(ecosystem, {}).get(package, {}).get(version)
        if bad:
            raise ConfigError(f"{path}: version: {package} {version}{via} must not be installed: {bad}")


def load_entry(entry_dir: Path) -> Gateway:
    path = entry_dir / ENTRY_FILE
    data = load_yaml(path)
    for derived in ("variant_of", "variant"):
        if isinstance(data, dict) and derived in data:
            raise ConfigError(f"{path}: {derived}: not a field of the file (set on an entry derived with a variant; "
                              "declare variants under 'variants:')")
    try:
        entry = Gateway.model_validate({**data, "entry_dir": entry_dir})
    except ValidationError as err:
        raise ConfigError(format_validation_error(path, err)) from None
    if entry.name != entry_dir.name:
        raise ConfigError(f"{path}: name '{entry.name}' must equal its folder name '{entry_dir.name}'")
    refuse_known_bad(path, entry.name, entry.version, entry.local.install, entry_dir)
    for out_name, template in entry.local.config_files.items():
        if not (entry_dir / template).is_file():
            raise ConfigError(f"{path}: local.config_files.{out_name}: template {template} not found")
    for template in entry.cloud.templates() if entry.cloud else []:
        if not (entry_dir / template).is_file():
            raise ConfigError(f"{path}: cloud template {template} not found")
    for field, names in [("local.services", entry.local.services),
                         *((f"variants.{n}.services", v.services) for n, v in entry.variants.items())]:
        for service in names:
            definition = services_dir() / service / SERVICE_FILE
            if not definition.is_file():
                known = sorted(d.parent.name for d in services_dir().glob(f"*/{SERVICE_FILE}"))
                raise ConfigError(f"{path}: {field}: unknown service '{service}' (no {definition}); known "
                                  f"services: {', '.join(known) or 'none'}")
    for name, variant in entry.variants.items():
        for template in variant.templates():
            if not (entry_dir / template).is_file():
                raise ConfigError(f"{path}: variants.{name}: template {template} not found")
        if variant.cloud is not None and entry.cloud is None:
            raise ConfigError(f"{path}: variants.{name}.cloud: the entry has no cloud section to change")
    return entry


def catalog_dir(root: Path | None = None) -> Path:
    """``root``, else $AIGW_BENCH_CATALOG, else this repository's ``stacks/``."""
    return (root or Path(os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG_DIR)).resolve()


def load_catalog(root: Path | None = None) -> Catalog:
    """Load every ``<root>/<name>/gateway.yaml`` (default: :func:`catalog_dir`)."""
    root = catalog_dir(root)
    if not root.is_dir():
        raise ConfigError(f"catalog directory {root} does not exist")
    entries = {d.name: load_entry(d) for d in sorted(root.iterdir()) if (d / ENTRY_FILE).is_file()}
    if not entries:
        raise ConfigError(f"catalog directory {root} holds no */{ENTRY_FILE}")
    for g in entries.values():
        for old in g.formerly:
            if old in entries:
                raise ConfigError(f"{g.entry_dir / ENTRY_FILE}: formerly: '{old}' is the name of another entry "
                                  f"({entries[old].entry_dir}); a former name must be free")
    baselines = [g.name for g in entries.values() if g.role == "baseline"]
    if len(baselines) > 1:
        raise ConfigError(f"{root}: more than one baseline entry ({', '.join(baselines)}); keep one")
    return Catalog(root, entries)
