"""Catalog variants: one entry, several named configurations (schema/catalog.py), as data. Pure: no process starts."""

from __future__ import annotations

import pytest
import yaml

from aigw_bench.local.cpus import plan_cpus
from aigw_bench.local.engine import LocalEngine
from aigw_bench.measure.plan import Knobs
from aigw_bench.run.loop import Runner, _target_record
from aigw_bench.run.plan import plan_run
from schema.catalog import load_catalog, variant_targets
from schema.errors import ConfigError
from schema.manifest import RigRecord
from schema.mock import load_mock
from schema.results import Outcome, Status, read_outcomes, write_outcome
from tests.helpers import write_suite
from tests.test_catalog import GOOD, write_entry

pytestmark = pytest.mark.pure

DIRECT = {"name": "direct", "title": "Direct", "role": "baseline", "version": "1", "source": "tests",
          "local": {"base_url": "{{ mock_url }}"}}
VARIANTS = {
    "none": {"suite": "policies", "summary": "as it is, without the key",
             "env": {"SECRET": None}, "headers": {"Authorization": None}},
    "auth": {"suite": "policies", "summary": "a key check", "upstream": "src/auth.py:12",
             "vars": {"keyed": True}, "env": {"EXTRA": "1"}, "headers": {"Authorization": "Bearer right"},
             "config_files": {"app.conf": "auth.conf.j2"}},
    "guard": {"suite": "policies", "summary": "a prompt check",
              "unsupported": "compiled out of this build (build/plugins.js lists no guard)"},
    "resilient": {"suite": "faults", "summary": "retries on"},
}
DEMO = {**GOOD, "request": {"headers": {"Authorization": "Bearer old", "x-keep": "1"}},
        "local": {**GOOD["local"], "env": {"SECRET": "s", "KEEP": "k"}, "vars": {"keyed": False, "other": 1},
                  "config_files": {"app.conf": "base.conf.j2"}},
        "variants": VARIANTS}


@pytest.fixture
def catalog(tmp_path):
    write_entry(tmp_path, "demo", DEMO, {"base.conf.j2": "base", "auth.conf.j2": "auth"})
    write_entry(tmp_path, "direct", DIRECT)
    write_entry(tmp_path, "plain", {**GOOD, "name": "plain", "local": {**GOOD["local"], "port": 19998}})
    return load_catalog(tmp_path)


def test_a_variant_is_the_entry_with_its_overrides_merged_over_it(catalog):
    demo = catalog.get("demo")
    auth = demo.with_variant("auth")
    assert (auth.name, auth.entry, auth.variant, auth.variant_of) == ("demo+auth", "demo", "auth", "demo")
    assert auth.local.vars == {"keyed": True, "other": 1}
    assert auth.local.env == {"SECRET": "s", "KEEP": "k", "EXTRA": "1"}
    assert auth.request.headers == {"Authorization": "Bearer right", "x-keep": "1"}
    assert auth.local.config_files == {"app.conf": "auth.conf.j2"}
    assert auth.variant_spec.upstream == ["src/auth.py:12"]
    assert auth.unsupported is None
    # The entry itself is unchanged (frozen; the variant is a copy).
    assert demo.local.env == {"SECRET": "s", "KEEP": "k"} and demo.variant is None and demo.entry == "demo"


def test_null_removes_what_the_entry_sets(catalog):
    none = catalog.get("demo").with_variant("none")
    assert none.local.env == {"KEEP": "k"}
    assert none.request.headers == {"x-keep": "1"}


def test_entry_plus_variant_names_a_target(catalog):
    assert catalog.get("demo+guard").unsupported.startswith("compiled out")
    assert [t.name for t in catalog.select(["demo+auth", "demo"])] == ["demo+auth", "demo"]


def test_an_unknown_variant_names_the_file_the_target_and_the_variant(catalog, tmp_path):
    with pytest.raises(ConfigError) as err:
        catalog.get("demo+cache")
    text = str(err.value)
    assert str(tmp_path / "demo" / "gateway.yaml") in text and "'demo'" in text and "'cache'" in text
    assert "auth (policies)" in text  # what it has


def test_a_suite_runs_every_variant_of_its_kind_and_the_baseline_as_it_is(catalog):
    targets, left_out = variant_targets(catalog.select(["direct", "demo", "plain"]), "policies", None)
    # in the file's order (write_entry sorts the keys)
    assert [t.name for t in targets] == ["direct", "demo+auth", "demo+guard", "demo+none"]
    assert left_out == ["plain"]
    faults, _ = variant_targets(catalog.select(["demo"]), "faults", None)
    assert [t.name for t in faults] == ["demo+resilient"]


def test_chosen_variants_only(catalog):
    targets, _ = variant_targets(catalog.select(["direct", "demo"]), "policies", ["guard", "auth"])
    assert [t.name for t in targets] == ["direct", "demo+guard", "demo+auth"]


def test_a_variant_no_selected_target_declares_is_refused(catalog):
    with pytest.raises(ConfigError, match=r"unknown policies variant 'cache'.*declare auth, guard, none"):
        variant_targets(catalog.select(["demo"]), "policies", ["cache"])
    # a faults variant is not a policy
    with pytest.raises(ConfigError, match="unknown policies variant 'resilient'"):
        variant_targets(catalog.select(["demo"]), "policies", ["resilient"])


def test_a_variant_one_target_does_not_declare_names_target_variant_and_file(tmp_path):
    write_entry(tmp_path, "demo", DEMO, {"base.conf.j2": "base", "auth.conf.j2": "auth"})
    other = {**GOOD, "name": "other", "local": {**GOOD["local"], "port": 19998},
             "variants": {"none": {"suite": "policies", "summary": "bare"}}}
    write_entry(tmp_path, "other", other)
    cat = load_catalog(tmp_path)
    with pytest.raises(ConfigError) as err:
        variant_targets(cat.select(["demo", "other"]), "policies", ["auth"])
    assert str(tmp_path / "other" / "gateway.yaml") in str(err.value)
    assert "'other' does not declare the policies variant 'auth'" in str(err.value)


def test_variants_chosen_without_a_variants_suite_are_refused(catalog):
    with pytest.raises(ConfigError, match="--suite policies"):
        variant_targets(catalog.select(["demo"]), None, ["auth"])
    assert variant_targets(catalog.select(["demo"]), None, None) == (catalog.select(["demo"]), [])


@pytest.mark.parametrize(("variant", "files", "message"), [
    ({"suite": "policies", "summary": "x", "unsupported": "no", "env": {"A": "1"}},
     {}, "variants.bad: an unsupported variant runs nothing: drop env"),
    ({"suite": "policies"}, {}, "variants.bad.summary: Field required"),
    ({"suite": "policies", "summary": "x", "config_files": {"a.conf": "missing.j2"}},
     {}, "variants.bad: template missing.j2 not found"),
    ({"suite": "policies", "summary": "x", "cloud": {"values": "v.j2"}},
     {"v.j2": ""}, "variants.bad.cloud: the entry has no cloud section"),
    ({"suite": "Policies!", "summary": "x"}, {}, "variants.bad.suite"),
    ({"suite": "policies", "summary": "x", "colour": "red"}, {}, "variants.bad.colour"),
])
def test_bad_variants_name_the_file_and_the_field(tmp_path, variant, files, message):
    write_entry(tmp_path, "demo", {**GOOD, "variants": {"bad": variant}}, files)
    with pytest.raises(ConfigError) as err:
        load_catalog(tmp_path)
    assert str(tmp_path / "demo" / "gateway.yaml") in str(err.value)
    assert message in str(err.value)


def test_a_bad_variant_name_is_refused(tmp_path):
    write_entry(tmp_path, "demo", {**GOOD, "variants": {"With Space": {"suite": "policies", "summary": "x"}}})
    with pytest.raises(ConfigError, match="variant name 'With Space'"):
        load_catalog(tmp_path)


def test_the_derived_fields_cannot_be_written_in_the_file(tmp_path):
    write_entry(tmp_path, "demo", {**GOOD, "variant": "auth"})
    with pytest.raises(ConfigError, match=r"gateway\.yaml: variant: not a field of the file"):
        load_catalog(tmp_path)


def test_a_variant_changes_the_cloud_section(tmp_path):
    cloud = {"kind": "manifests", "image": {"repository": "x", "tag": "1"}, "port": 8080,
             "selector": {"app": "x"}, "manifests": "m.j2", "vars": {"a": "1"}}
    variants = {"auth": {"suite": "policies", "summary": "k", "cloud": {"manifests": "m-auth.j2", "vars": {"b": "2"}}}}
    write_entry(tmp_path, "demo", {**GOOD, "cloud": cloud, "variants": variants}, {"m.j2": "", "m-auth.j2": ""})
    auth = load_catalog(tmp_path).get("demo+auth")
    assert auth.cloud.manifests == "m-auth.j2" and auth.cloud.vars == {"a": "1", "b": "2"}


def test_a_suite_file_names_the_variants_it_runs(tmp_path, catalog):
    suite = write_suite(tmp_path)
    data = yaml.safe_load(suite.read_text())
    suite.write_text(yaml.safe_dump({**data, "variants": "policies"}))
    plan = plan_run("local", targets=catalog.select(["direct", "demo", "plain"]), scenario=None, suite=str(suite),
                    mock_profile=None, knobs=Knobs(), repeats=None, results_root=tmp_path / "r", variants=["auth"])
    assert [t.name for t in plan.targets] == ["direct", "demo+auth"] and plan.left_out == ["plain"]
    # Without `variants:` the suite runs the entries as they are, and chosen variants are refused.
    with pytest.raises(ConfigError, match="runs the entries as they are"):
        plan_run("local", targets=catalog.select(["demo"]), scenario="seed", suite=None, mock_profile=None,
                 knobs=Knobs(), repeats=None, results_root=tmp_path / "r", variants=["auth"])


def test_an_unsupported_variant_is_recorded_with_its_evidence_and_starts_nothing(tmp_path, catalog):
    plan = plan_run("local", targets=[catalog.get("demo+guard")], scenario="seed", suite=None, mock_profile=None,
                    knobs=Knobs(), repeats=None, results_root=tmp_path / "r")
    runner = Runner(plan, LocalEngine(load_mock("fast"), plan_cpus()))
    runner.run_dir = tmp_path
    outcome = runner._run_target(plan.targets[0], 1, RigRecord())
    assert outcome.status == Status.NOT_RUNNABLE
    assert outcome.reason == "not in this edition: compiled out of this build (build/plugins.js lists no guard)"
    assert outcome.evidence == {"unsupported": "compiled out of this build (build/plugins.js lists no guard)"}
    assert (outcome.entry, outcome.variant) == ("demo", "guard")
    assert not (tmp_path / "targets" / "demo+guard" / "r1" / "gateway.log").exists()
    # Nothing runs at all when every selected target is such a variant: said before anything starts.
    with pytest.raises(ConfigError, match="demo\\+guard: not in this edition"):
        runner._require_runnable()


def test_the_manifest_and_the_outcome_name_entry_and_variant(tmp_path, catalog):
    record = _target_record(catalog.get("demo+auth"))
    assert {k: record[k] for k in ("entry", "variant", "variant_suite", "summary", "upstream", "unsupported")} == {
        "entry": "demo", "variant": "auth", "variant_suite": "policies", "summary": "a key check",
        "upstream": ["src/auth.py:12"], "unsupported": None}
    assert "variant" not in _target_record(catalog.get("demo"))  # entries as they are: the records as before


def test_outcomes_of_entries_as_they_are_keep_their_format(tmp_path):
    path = write_outcome(tmp_path, Outcome(target="nginx", repeat=1, status=Status.OK))
    assert "variant" not in path.read_text() and "entry" not in path.read_text()
    path = write_outcome(tmp_path, Outcome(target="nginx+auth", repeat=1, status=Status.OK, entry="nginx",
                                           variant="auth"))
    assert [(o.entry, o.variant) for o in read_outcomes(tmp_path) if o.variant] == [("nginx", "auth")]
