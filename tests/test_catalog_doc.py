"""docs/catalog.md cannot drift from the code: its field reference is generated from the models, its
template-variable tables name exactly the variables the code builds, and its worked examples'
files are valid entries."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from aigw_bench.local.context import NO_WORK_DIR, entry_context, mock_context, target_context
from aigw_bench.local.cpus import plan_cpus
from aigw_bench.local.install import InstallTarget
from schema.catalog import DEFAULT_CATALOG_DIR, load_catalog
from schema.catalog_doc import DOC, generated_block, main, reference
from schema.mock import load_mock, load_profile
from schema.templating import render_file
from tests.doc_examples import follow_haproxy, follow_litellm

pytestmark = pytest.mark.pure

TEXT = DOC.read_text()


def table_names(heading: str) -> set[str]:
    """The first column (`name`) of the first table after ``heading``."""
    rest = TEXT.split(heading, 1)[1]
    rows = rest.split("\n\n| variable |", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", rows, re.MULTILINE))


def test_the_field_reference_is_generated_from_the_models():
    assert generated_block(TEXT) == reference()
    assert main(["--check"]) == 0
    # Every key of the models is there (not only the same text as last time).
    for key in ("`runnable`", "`provides`", "`timeout_s`", "`secret_headers`", "`memory_per_replica`"):
        assert key in generated_block(TEXT)


def test_the_local_variables_are_the_ones_the_code_builds():
    litellm_like = next((g for g in load_catalog(DEFAULT_CATALOG_DIR) if g.local.install
                         and g.local.install.kind in ("npm", "pip")), None)
    assert litellm_like is not None
    context = target_context(litellm_like, load_mock(), plan_cpus(), NO_WORK_DIR)
    assert table_names("**Local**") == set(context) - set(litellm_like.local.vars)


def test_the_mocks_extra_variables_are_named():
    mock = load_mock()
    plain = entry_context(mock.local, mock.name, mock.entry_dir, NO_WORK_DIR, None, 1, "", mock)
    extra = set(mock_context(mock, plan_cpus(), NO_WORK_DIR, load_profile("instant"))) - set(plain)
    assert extra == {"contract", "profile", "settings_json", "fault_plan"}
    sentence = TEXT.split("The mock's own templates", 1)[1].split("\n\n", 1)[0]
    assert all(f"`{name}`" in sentence for name in extra)


def test_the_cloud_variables_are_the_ones_the_program_builds():
    from components.gateway import GatewayArgs, template_context

    entry = load_catalog(DEFAULT_CATALOG_DIR).get("litellm")
    args = GatewayArgs(entry=entry, cloud=entry.cloud, replicas=3, cpu_per_replica=4.0, workers=4,
                       mock_cluster_url="http://fast-mock.mock.svc.cluster.local:8080", mock_url="",
                       provider=None, lb_controller=None, source_ranges=[], cluster_ready=[])  # type: ignore[arg-type]
    context = set(template_context(args)) - set(entry.cloud.vars) | {"files"}  # files: render_documents adds it
    assert table_names("**Cloud**") == context


@pytest.fixture
def scratch(tmp_path):
    (tmp_path / "stacks").mkdir()
    return tmp_path


def test_the_haproxy_example_is_a_valid_entry(scratch):
    follow_haproxy(scratch, cloud=False)
    entry = load_catalog(scratch / "stacks").get("haproxy")
    assert (entry.role, entry.local.port, entry.local.install.apt) == ("floor", 18082, ["haproxy"])
    context = target_context(entry, load_mock(), plan_cpus(), scratch / "work")
    config = render_file(entry.entry_dir / "local" / "haproxy.cfg.j2", context)
    assert f"bind 127.0.0.1:{entry.local.port}" in config and "option http-no-delay" in config
    assert f"server mock {context['mock_host']}:{context['mock_port']}" in config


# Top-level keys of the haproxytech/helm-charts chart haproxy 1.29.0 (haproxy/values.yaml at commit
# c03820d, "RELEASE/MINOR: CI: Bump all releases", the release of 1.29.0): a key outside these is
# silently ignored by the chart.
HAPROXY_CHART_KEYS = {
    "serviceAccount", "image", "checksumConfigMap", "shareProcessNamespace", "sidecarContainers", "kind",
    "replicaCount", "minReadySeconds", "args", "deploymentAnnotations", "deploymentLabels", "livenessProbe",
    "readinessProbe", "startupProbe", "daemonset", "initContainers", "terminationGracePeriodSeconds",
    "imageCredentials", "existingImagePullSecret", "containerPorts", "rawContainerPorts", "strategy",
    "priorityClassName", "lifecycle", "extraEnvs", "extraEnvFrom", "extraVolumeMounts", "extraVolumes", "config",
    "configMount", "includes", "includesMountPath", "mountedSecrets", "nodeSelector", "tolerations", "affinity",
    "topologySpreadConstraints", "dnsConfig", "dnsPolicy", "podLabels", "podAnnotations", "rbac",
    "podSecurityPolicy", "podSecurityContext", "securityContext", "resources", "autoscaling", "keda",
    "PodDisruptionBudget", "service", "serviceMonitor", "ingress", "httpRoute",
}


def run_program(stack_file, catalog) -> dict:
    """The Pulumi program for ``stack_file`` under mocks (tests/infra/run_program.py), with ``catalog``."""
    from tests.infra.conftest import EVERY_STACK, RUNNER

    out = subprocess.run([sys.executable, str(RUNNER), str(stack_file), *EVERY_STACK], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "AIGW_BENCH_CATALOG": str(catalog)})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert "error" not in result, result.get("error")
    return result


def test_the_haproxy_cloud_example_deploys_the_chart_it_names(scratch):
    follow_haproxy(scratch)
    result = run_program(scratch / "Pulumi.haproxy.yaml", scratch / "stacks")
    by_name = {r["name"]: r for r in result["resources"]}
    release = by_name["gateway-release"]["inputs"]
    assert (release["chart"], release["version"]) == ("haproxy", "1.29.0")
    assert release["repositoryOpts"]["repo"] == "https://haproxytech.github.io/helm-charts"
    values = release["values"]
    assert set(values) <= HAPROXY_CHART_KEYS, set(values) - HAPROXY_CHART_KEYS
    assert values["image"] == {"repository": "docker.io/haproxytech/haproxy-alpine", "tag": "3.3.10"}
    assert values["kind"] == "Deployment" and values["replicaCount"] == 1
    assert values["resources"]["requests"] == values["resources"]["limits"] == {"cpu": "12", "memory": "1Gi"}
    mock_host, mock_port = result["exports"]["mock_cluster_url"].removeprefix("http://").split(":")
    config = values["config"]
    assert f"server mock {mock_host}:{mock_port}\n" in config and "bind :8080\n" in config
    assert "nbthread 12\n" in config and "option http-no-delay\n" in config
    assert values["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    # The program's NLB selects the pods by the chart's selector labels (templates/_helpers.tpl:
    # app.kubernetes.io/name = the chart's name, app.kubernetes.io/instance = the release's name).
    nlb = by_name["gateway-nlb"]["inputs"]["spec"]
    assert nlb["selector"] == {"app.kubernetes.io/name": "haproxy", "app.kubernetes.io/instance": release["name"]}
    assert nlb["ports"][0]["targetPort"] == values["containerPorts"]["http"]


def test_the_litellm_example_makes_a_variant_that_shares_the_install(scratch):
    shutil.copytree(DEFAULT_CATALOG_DIR / "litellm", scratch / "stacks" / "litellm")
    follow_litellm(scratch)
    cat = load_catalog(scratch / "stacks")
    original, variant = cat.get("litellm"), cat.get("litellm-router")
    assert (variant.local.port, variant.title) == (14001, "LiteLLM proxy, least-busy routing")
    assert variant.cloud.port == original.cloud.port  # only the local port changed
    assert "routing_strategy: least-busy" in (variant.entry_dir / "config.yaml.j2").read_text()
    installs = [InstallTarget(g.name, g.local.install, g.entry_dir).install_dir for g in (original, variant)]
    assert installs[0] == installs[1]
    assert "aigw-bench:gateway: litellm-router" in (scratch / "Pulumi.litellm-router.yaml").read_text()
