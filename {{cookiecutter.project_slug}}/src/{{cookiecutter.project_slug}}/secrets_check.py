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


def interleaves_patterns(text: str) -> bool:
    """Whether every 2nd, 3rd or 4th character follows a sequence or repeats (`a1b2c3...`)."""
    lower = text.lower()
    for stride in (2, 3, 4):
        runs = [lower[start::stride] for start in range(stride)]
        if all(len(set(run)) <= 2 or follows_sequences(run) or repeats_itself(run) for run in runs):
            return True
    return False


EVERYDAY_WORDS = """the be to of and a in that have it for not on with he as you do at
    this but his by from they we say her she or an will my one all would there their what so
    up out if about
    who get which go me when make can like time no just him know take people into year your
    good some could them see other than then now look only come its over think also back after
    use two how our work first well way even new want because any these give day most us is
    are was were has had am been secret key token auth app my our very long random string
    quick brown fox jumps lazy dog pack box five dozen liquor jugs sphinx black quartz judge
    vow waltz bad nymph big fjords vex quick wizards jump how vexingly daft zebras"""
COMMON_WORDS = frozenset(EVERYDAY_WORDS.split())
MAX_WORDS_SHARE = 0.6
DOCUMENTATION_UUIDS = frozenset(
    {
        "123e4567e89b12d3a456426614174000",
        "550e8400e29b41d4a716446655440000",
        "f81d4fae7dec11d0a76500a0c91e6bf6",
        "3fa85f6457174562b3fc2c963f66afa6",
        "6ba7b8109dad11d180b400c04fd430c8",
        "6ba7b8119dad11d180b400c04fd430c8",
        "6ba7b8129dad11d180b400c04fd430c8",
        "6ba7b8149dad11d180b400c04fd430c8",
        "00000000000000000000000000000000",
        "ffffffffffffffffffffffffffffffff",
    }
)


def words_share(text: str) -> float:
    """The share of `text` in everyday words, found greedily (`thequickbrownfox` too)."""
    letters = re.sub(r"[^a-z]", "", text.lower())
    covered, at = 0, 0
    while at < len(letters):
        for size in range(min(12, len(letters) - at), 2, -1):
            if letters[at : at + size] in COMMON_WORDS:
                covered, at = covered + size, at + size
                break
        else:
            at += 1
    return covered / max(len(text), 1)


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
    if interleaves_patterns(secret):
        return "this one interleaves simple patterns"
    hex_digits = re.sub(r"[^0-9a-f]", "", secret.lower())
    if any(uuid in hex_digits for uuid in DOCUMENTATION_UUIDS):
        return "this one contains a UUID from documentation examples"
    if words_share(secret) > MAX_WORDS_SHARE:
        return "this one reads as words or a sentence"
    return None
