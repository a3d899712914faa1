"""Target colours: distinct within a run, the same for a target from run to run, from its role and name
only (never its rank or position in the run)."""

from __future__ import annotations

import itertools

import pytest

from analysis.charts import target_colours

pytestmark = pytest.mark.pure

RUN = {"direct": "baseline", "nginx": "floor", "haproxy": "floor", "haproxy-nodelay": "floor",
       "litellm": "gateway", "litellm-router": "gateway", "portkey": "gateway", "kong": "gateway"}


def test_every_target_of_a_run_gets_its_own_colour_even_with_one_role():
    colours = target_colours(RUN)
    assert len(set(colours.values())) == len(RUN)
    floors = {name: "floor" for name in (f"proxy-{i}" for i in range(12))}
    assert len(set(target_colours(floors).values())) == 12
    many = {f"gateway-{i}": "gateway" for i in range(40)}  # more than every palette holds
    assert len(set(target_colours(many).values())) == 40


def test_a_target_keeps_its_colour_across_runs_with_other_targets():
    alone = {name: target_colours({name: "gateway"})[name] for name in
             ["a-gw", "b-gw", "c-gw", "d-gw", "e-gw", "kong", "litellm-router", "zeta", "zz-top"]}
    mine = alone["litellm-router"]
    # Other targets whose own colour is not this one never move it, before or after it in name order.
    others = [n for n in alone if n != "litellm-router" and alone[n] != mine]
    assert any(n < "litellm-router" for n in others)
    for pair in itertools.combinations(others, 2):
        run = {"litellm-router": "gateway", **{o: "gateway" for o in pair}}
        if alone[pair[0]] != alone[pair[1]]:
            assert target_colours(run)["litellm-router"] == mine, pair
    assert target_colours(dict(reversed(list(RUN.items())))) == target_colours(RUN)  # not by position


def test_roles_keep_their_palettes():
    colours = target_colours(RUN)
    neutral = {colours[n] for n, r in RUN.items() if r != "gateway"}
    bright = {colours[n] for n, r in RUN.items() if r == "gateway"}
    assert not neutral & bright
    assert colours["direct"] == target_colours({"anything-else": "baseline"})["anything-else"]
