"""How strong a hand-made secret is: the heuristics AUTH_SECRET is checked with (settings.py)."""

from __future__ import annotations

import itertools
import re

PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "your-secret", "please-change-me", "auth-secret"}
)
MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT = 10
PLACEHOLDER_WORDS = (
    "changeme",
    "replaceme",
    "yoursecret",
    "mysecret",
    "secretkey",
    "placeholder",
    "password",
    "example",
)
"""Words that give a hand-made secret away (compared without case and punctuation)."""
SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "qwertzuiop",
    "azertyuiop",
    "qsdfghjklm",
    "wxcvbn",
)
"""Runs a hand-made secret follows: alphabet, digits, keyboard rows and columns."""
MAX_SEQUENTIAL_SHARE = 0.5


def repeats_itself(text: str) -> bool:
    """A short unit repeated (`abcabc`), or over a quarter of its 3-character windows repeats."""
    length = len(text)
    for period in range(1, length // 2 + 1):
        if text.startswith(text[period:]):
            return True
    windows = [text[i : i + 3] for i in range(length - 2)]
    return len(set(windows)) < 0.75 * len(windows)


def _steps() -> frozenset[tuple[str, str]]:
    pairs = {pair for run in SEQUENCES for pair in itertools.pairwise(run)}
    return frozenset(pairs | {(b, a) for a, b in pairs})


SEQUENCE_STEPS = _steps()


def follows_sequences(text: str) -> bool:
    """Whether most neighbouring characters step along the alphabet, digits or a keyboard."""
    lower = text.lower()
    steps = sum(pair in SEQUENCE_STEPS for pair in itertools.pairwise(lower))
    return steps > MAX_SEQUENTIAL_SHARE * max(len(lower) - 1, 1)


def secret_weakness(secret: str) -> str | None:
    """Why `secret` is too weak to sign tokens with (a hand-made one usually is), or None."""
    if secret.strip().lower() in PLACEHOLDER_SECRETS:
        return "this one is a placeholder"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"this one has {len(secret)}"
    letters = re.sub(r"[^a-z0-9]", "", secret.lower())
    for word in PLACEHOLDER_WORDS:
        if word in letters:
            return f"this one contains the placeholder word {word!r}"
    distinct = len(set(secret))
    if distinct < MIN_SECRET_DISTINCT:
        return f"this one uses only {distinct} different characters"
    if repeats_itself(secret):
        return "this one repeats a pattern"
    if follows_sequences(secret):
        return "this one follows the alphabet or the keyboard"
    return None
