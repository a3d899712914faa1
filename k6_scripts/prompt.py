"""A deterministic prompt of a given size in tokens.

The text is generated from a small grammar over common English words, so the same seed and token
count always give the same bytes, for every target and on every machine. Token counts are an
estimate for GPT-style BPE tokenizers: every word in the lists below is a frequent English word that
such tokenizers encode as one token with its leading space, and every punctuation mark is one more
token. No tokenizer runs here (they download their vocabularies), so the estimate is what is
recorded, together with the prompt's exact byte length.
"""

from __future__ import annotations

import random

_ADJECTIVES = (
    "new old small large quick slow early late main local public simple clear full open short long high "
    "low first last next final recent daily weekly major minor busy quiet stable heavy light fresh"
).split()
_NOUNS = (
    "team plan report service system order request user account market price store client network "
    "server record budget office project product message schedule question answer process region "
    "supplier contract invoice meeting vendor warehouse shipment update policy review decision"
).split()
_VERBS = (
    "checked moved sent opened closed changed reviewed updated shared started finished planned "
    "tracked raised signed approved delayed reported handled listed counted tested"
).split()
_PREPOSITIONS = "for with after before during about from into under over".split()
_ADVERBS = "again today later soon early quickly slowly carefully twice".split()

# The instruction ahead of the generated text; its token estimate is counted like the rest.
_INSTRUCTION = "Read the notes below and write a short summary of the main points."


def _estimate_tokens(text: str) -> int:
    words = text.split()
    punctuation = sum(text.count(p) for p in ".,:")
    return len(words) + punctuation


def _sentence(rng: random.Random) -> list[str]:
    """One sentence as a list of word tokens, the last carrying its full stop."""
    words = [
        "The",
        rng.choice(_ADJECTIVES),
        rng.choice(_NOUNS),
        rng.choice(_VERBS),
        "the",
        rng.choice(_NOUNS),
        rng.choice(_PREPOSITIONS),
        "the",
        rng.choice(_ADJECTIVES),
        rng.choice(_NOUNS),
    ]
    if rng.random() < 0.5:
        words.append(rng.choice(_ADVERBS))
    return words


def generate_prompt(tokens: int, seed: int = 1) -> str:
    """Text whose estimated size is exactly ``tokens`` (for ``tokens`` >= the instruction's size)."""
    if tokens < 1:
        raise ValueError("tokens must be at least 1")
    rng = random.Random(seed)
    header = _INSTRUCTION
    budget = tokens - _estimate_tokens(header)  # its full stop becomes the ':' below
    if budget < 0:
        return " ".join(header.rstrip(".").split()[:tokens])
    if budget == 0:
        return header
    body: list[str] = []
    while budget > 0:
        sentence = _sentence(rng)
        cost = len(sentence) + 1  # the full stop
        if cost > budget:
            # Close the text with a shortened sentence that uses the budget exactly.
            sentence = sentence[: max(budget - 1, 0)]
            cost = len(sentence) + 1
            if not sentence:
                body.append("Done")
                budget -= 1
                break
        body.append(" ".join(sentence) + ".")
        budget -= cost
    return header[:-1] + ": " + " ".join(body)


def estimate_tokens(text: str) -> int:
    """The token estimate used by :func:`generate_prompt` (words plus punctuation marks)."""
    return _estimate_tokens(text)
