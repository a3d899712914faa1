"""Which of a stack's entry's variants the stack deploys (stack config ``variants``), each as a gateway of
its own: the entry with the variant's ``cloud:`` overrides applied, in a namespace of its own, with its own
internal NLB. Validated before any resource is declared: a variant that is unknown, belongs to another
entry, is not in the gateway's edition, cannot be deployed to the cloud, or would be deployed as the entry
as it is under the variant's name (a substitute), is refused with the reason.
"""

from __future__ import annotations

from schema.catalog import Catalog, Gateway, Variant
from schema.cloud import variant_namespace
from schema.services import ServiceDefinition, load_service

# What a variant may change on this machine only; any of these without a ``cloud:`` section means the stack
# would deploy the entry unchanged under the variant's name.
_LOCAL_CHANGES = ("vars", "env", "config_files", "services")


class VariantError(ValueError):
    """A variant a stack cannot deploy; the message names it and why (without the config key)."""


def resolve_variants(entry: Gateway, names: list[str], catalog: Catalog) -> list[Gateway]:
    """The entry with each named variant applied, its cloud section in the variant's own namespace."""
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise VariantError(f"{', '.join(repr(d) for d in duplicates)} listed more than once")
    if names and entry.deployment.kind == "none":
        raise VariantError(f"the {entry.name} entry deploys nothing (kind none): it has no variants to deploy")
    return [_deployable(entry, name, catalog) for name in names]


def _deployable(entry: Gateway, name: str, catalog: Catalog) -> Gateway:
    spec = entry.variants.get(name)
    if spec is None:
        owners = [g.name for g in catalog if name in g.variants and g.name != entry.name]
        elsewhere = (f"; '{name}' is a variant of {', '.join(owners)}, not of {entry.name} (a stack deploys variants "
                     "of its own gateway)") if owners else ""
        raise VariantError(f"unknown variant '{name}' of {entry.name} (its variants: "
                           f"{', '.join(entry.variants) or 'none'}; {entry.path}){elsewhere}")
    if spec.unsupported is not None:
        raise VariantError(f"variant '{name}' of {entry.name} is not in this edition: {spec.unsupported.strip()}")
    why = undeployable(spec, name, entry)
    if why is not None:
        raise VariantError(f"variant '{name}' of {entry.name} {why}")
    for service in spec.services:
        if load_service(service, needed_by=f"{entry.path}: variants.{name}").cloud is None:
            raise VariantError(f"variant '{name}' of {entry.name} needs the service '{service}', which has no cloud "
                               "section (services/<name>/service.yaml `cloud:`)")
    applied = entry.with_variant(name)
    cloud = applied.deployment
    return applied.model_copy(update={"cloud": cloud.model_copy(update={
        "namespace": variant_namespace(cloud.namespace, name)})})


def undeployable(spec: Variant, name: str, entry: Gateway) -> str | None:
    """Why a variant (supported by the edition) cannot be deployed to the cloud, or None: the catalog says so
    (``cloud.unsupported``), or it changes the local process only (no ``cloud:``: the stack would deploy the
    entry as it is under the variant's name)."""
    if spec.cloud is not None and spec.cloud.unsupported is not None:
        return f"cannot be deployed to the cloud: {spec.cloud.unsupported.strip()}"
    local_only = [k for k in _LOCAL_CHANGES if getattr(spec, k)]
    if spec.cloud is None and local_only:
        return (f"changes the local process ({', '.join(local_only)}) and has no cloud section: a stack would deploy "
                f"the entry as it is under its name (add variants.{name}.cloud in {entry.path})")
    return None


def services_of(gateway: Gateway) -> list[ServiceDefinition]:
    """The backing services a deployed gateway needs (its variant's and its entry's), with their cloud section."""
    return [load_service(name, needed_by=str(gateway.path)) for name in gateway.local.services]


def parse_cpu(value: str) -> float:
    """A Kubernetes CPU quantity ("500m", "1", "1.5") in CPUs."""
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)
