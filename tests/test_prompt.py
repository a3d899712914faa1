"""The prompt generator: deterministic, exact to its token estimate, plausible size per token."""

from __future__ import annotations

import pytest

from k6_scripts.prompt import estimate_tokens, generate_prompt

pytestmark = pytest.mark.pure


@pytest.mark.parametrize("tokens", [1, 2, 13, 14, 15, 16, 17, 100, 999, 1000, 1001, 8000])
def test_estimate_is_exactly_the_requested_size(tokens):
    assert estimate_tokens(generate_prompt(tokens)) == tokens


def test_same_seed_same_text_other_seed_other_text():
    assert generate_prompt(1000, seed=1) == generate_prompt(1000, seed=1)
    assert generate_prompt(1000, seed=1) != generate_prompt(1000, seed=2)


def test_a_thousand_tokens_is_a_few_kilobytes_like_english_text():
    # English averages roughly 4-6 bytes per token for GPT-style tokenizers.
    size = len(generate_prompt(1000).encode())
    assert 4000 <= size <= 6500


def test_rejects_non_positive_sizes():
    with pytest.raises(ValueError):
        generate_prompt(0)
