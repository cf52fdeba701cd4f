"""Contrastive scoring maths: which records of a cluster meet (pure functions over ids; no LLM, no I/O). The outcomes
of a comparison and their both-order combination are tacos.judges.orders; the Bradley-Terry fit is
tacos.method.bradley_terry.

The reference (method_spec §7) pairs rows adjacently in list order and drops the last row of an odd cluster; we add a
seeded shuffle per round, several rounds, and coverage of odd members, so a record's score uses every comparison it
took part in.
"""
from __future__ import annotations

import random
from typing import Sequence


def make_pairs(ids: Sequence[str], rounds: int, seed: int, salt: str = "") -> list[tuple[str, str]]:
    """Pairs to judge: per round a seeded shuffle, then adjacent pairs (0-1, 2-3, ...).

    The ids are sorted before shuffling so the pairs depend only on the set of ids, the seed, the salt (e.g. the
    cluster id) and the round. With an odd count the leftover member is paired with another member drawn by the
    same generator, so nobody goes unscored (the reference dropped it: §17.3). Fewer than two ids: no pairs.
    """
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    members = sorted(ids)
    if len(set(members)) != len(members):
        raise ValueError("make_pairs: ids contain duplicates; pass each record id once")
    if len(members) < 2:
        return []
    pairs: list[tuple[str, str]] = []
    for r in range(rounds):
        rng = random.Random(f"{seed}:{salt}:{r}")
        order = members.copy()
        rng.shuffle(order)
        pairs.extend((order[i], order[i + 1]) for i in range(0, len(order) - 1, 2))
        if len(order) % 2:
            partner = order[rng.randrange(len(order) - 1)]  # any member but the leftover itself
            pairs.append((order[-1], partner))
    return pairs
