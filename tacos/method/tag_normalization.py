"""Tag normalization: frequency filter, rule aggregation (stemming) and association aggregation.

Works on integer arrays (one entry per tag occurrence) so a 1M-record pool costs seconds: Python loops touch
each record twice (index its raw strings, build its output list); the rest loops over unique tags only.
NormalizeSpec is the stage's config (the `normalize` section of conf/config.yaml), validated before any stage runs.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from tacos.config import check_bool, check_choice, check_int, check_number

ORDERS = ("reference", "rules_first")
STEMMERS = ("porter", "none")
_NON_WORD = re.compile(r"\W+")


@dataclass
class AssociationSettings:
    """normalize.association: merge tags that (almost) always co-occur with a stronger one (InsTag's FP-Growth)."""

    enabled: bool = True
    min_support: int = 40  # co-occurrences, tuned on 52k rows; scaled like alpha (never below 3) with scale_alpha
    min_confidence: float = 0.99


@dataclass
class NormalizeSpec:
    """The `normalize` section: the frequency threshold (tuned on 52k rows), the order of filter and rules, and the
    association merges."""

    alpha: int = 20
    scale_alpha: bool = True  # scale alpha and min_support down linearly for pools smaller than 52k rows
    order: str = "reference"
    association: AssociationSettings = field(default_factory=AssociationSettings)

    def __post_init__(self) -> None:
        if isinstance(self.association, Mapping):  # the config gives a mapping
            self.association = AssociationSettings(**self.association)

    def validate(self) -> None:
        check_int("normalize.alpha", self.alpha, 0)
        check_bool("normalize.scale_alpha", self.scale_alpha)
        check_choice("normalize.order", self.order, ORDERS)
        check_bool("normalize.association.enabled", self.association.enabled)
        check_int("normalize.association.min_support", self.association.min_support, 1)
        check_number("normalize.association.min_confidence", self.association.min_confidence, 0.0, 1.0, low_open=True)

    def thresholds(self, n_records: int) -> tuple[int, int]:
        """(alpha, min_support) for a pool of n_records tagged records."""
        alpha, support = self.alpha, self.association.min_support
        if not self.scale_alpha:
            return alpha, support
        return effective_alpha(alpha, n_records), effective_alpha(support, n_records, min_alpha=min(3, support))


@dataclass(frozen=True)
class TagMapEntry:
    """What happened to one raw tag string."""

    raw: str
    canonical: str | None  # None = dropped
    # "kept" (rules left it unchanged) | "rule" (rules changed it) | "frequency<alpha" | "rule:empty" (nothing left
    # after the rules) | "association:<merged-into> conf=... support=..." (+ " via=<tag>" when reached via a chain)
    reason: str
    count: int  # raw occurrences in the pool


def effective_alpha(alpha: int, n_records: int, reference_pool: int = 52_000, min_alpha: int = 1) -> int:
    """Scale the frequency threshold to the pool size.

    The reference alpha (20) was tuned on Alpaca-52k; on a 5k pool it would delete almost every tag. Scales
    linearly (rounded half up), never below `min_alpha`, never above `alpha`.
    """
    if alpha < 0 or min_alpha < 0 or n_records < 0 or reference_pool <= 0:
        raise ValueError(f"effective_alpha needs alpha, min_alpha, n_records >= 0 and reference_pool > 0, got "
                         f"alpha={alpha}, min_alpha={min_alpha}, n_records={n_records}, reference_pool={reference_pool}")
    scaled = int(np.floor(alpha * n_records / reference_pool + 0.5))
    return min(alpha, max(min_alpha, scaled))


@lru_cache(maxsize=1 << 17)
def _porter_stem(word: str) -> str:
    return _porter().stem(word)


@lru_cache(maxsize=1)
def _porter():
    from nltk.stem import PorterStemmer  # NLTK's default mode, as in the reference code

    return PorterStemmer()


def rule_normalize(tag: str, stemmer: str = "porter") -> str:
    """Lowercase, non-word runs -> one space, strip, stem every word.

    The reference passed the whole phrase to PorterStemmer, which stems only its last word ("Creative Writing"
    -> "creative writ"); here every word is stemmed ("creativ write").
    """
    if stemmer not in STEMMERS:
        raise ValueError(f"unknown stemmer {stemmer!r}; choose one of {STEMMERS}")
    words = _NON_WORD.sub(" ", tag.lower()).split()
    if stemmer == "porter":
        words = [_porter_stem(w) for w in words]
    return " ".join(words)


def _first_per_record(rows: np.ndarray, tags: np.ndarray, n_tags: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated tags inside a record, keeping the first occurrence (input must be grouped by row)."""
    if rows.size == 0:
        return rows, tags
    _, first = np.unique(rows.astype(np.int64) * n_tags + tags, return_index=True)
    first.sort()  # back to occurrence order: rows stay grouped, tags keep their order of first appearance
    return rows[first], tags[first]


def _association_parents(rows: np.ndarray, tags: np.ndarray, n_records: int, doc_freq: np.ndarray,
                        min_support: int, min_confidence: float) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """(parent, root, co-occurrence matrix): parent[t] = the tag t merges into directly (itself if none), root[t]
    = the end of that chain.

    Tag indices must be in lexicographic order of the tag strings (ties are broken by index). A -> B qualifies
    when n(A,B) >= min_support and n(A,B)/n(A) >= min_confidence. Edges only go towards a stronger tag (higher
    n, ties: lexicographically smaller), which is exactly "if both directions qualify, merge the less frequent
    into the more frequent" (A -> B with n(B) <= n(A) implies B -> A qualifies too) and makes cycles
    impossible. Each A takes its strongest qualifying B.
    """
    n_tags = doc_freq.size
    x = sp.csr_matrix((np.ones(rows.size, dtype=np.int64), (rows, tags)), shape=(n_records, n_tags))
    co = (x.T @ x).tocsr()  # co[a, b] = number of records holding both a and b
    coo = co.tocoo()
    a, b, support = coo.row, coo.col, coo.data
    strength = np.empty(n_tags, dtype=np.int64)  # 0 = strongest
    strength[np.lexsort((np.arange(n_tags), -doc_freq))] = np.arange(n_tags)
    ok = ((a != b) & (support >= min_support) & (support / doc_freq[a] >= min_confidence)
          & (strength[b] < strength[a]))
    a, b = a[ok], b[ok]
    parent = np.arange(n_tags)
    if a.size:
        by_source = np.lexsort((strength[b], a))  # per source, strongest target first
        a, b = a[by_source], b[by_source]
        sources, first = np.unique(a, return_index=True)
        parent[sources] = b[first]
    root = parent
    while True:  # pointer jumping: log(chain length) passes
        nxt = root[root]
        if np.array_equal(nxt, root):
            return parent, root, co
        root = nxt


def normalize_tags(record_tags: Mapping[str, Sequence[str]], *, alpha: int, order: str = "reference",
                   association: bool = True, min_support: int = 2, min_confidence: float = 0.99
                   ) -> tuple[dict[str, list[str]], list[TagMapEntry], dict]:
    """record id -> raw tags  ==>  (record id -> canonical tags, tag map, stats).

    order="reference": drop raw strings seen < alpha times, then apply the rules (what the reference ran).
    order="rules_first": apply the rules, then drop canonical tags seen < alpha times (occurrences summed over
    their raw forms). Records left with no tag are dropped from the output. Association aggregation then merges,
    over per-record canonical tag sets, every tag that (almost) always co-occurs with a stronger one.
    Canonical tags of a record are deduplicated in order of first appearance. `alpha` is used as given (scale
    it with `effective_alpha` first).
    """
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; choose one of {ORDERS}")
    if not 0.0 < min_confidence <= 1.0 or min_support < 1:
        raise ValueError(f"need 0 < min_confidence <= 1 and min_support >= 1, got {min_confidence}, {min_support}")
    ids = list(record_tags)
    n_records = len(ids)
    vocab: defaultdict[str, int] = defaultdict()
    vocab.default_factory = vocab.__len__  # a new string gets the next index
    lengths = np.empty(n_records, dtype=np.int64)
    flat: list[int] = []
    for i, rid in enumerate(ids):
        tags = record_tags[rid]
        if isinstance(tags, str):
            raise TypeError(f"record {rid!r}: tags must be a list of strings, got the string {tags!r}")
        lengths[i] = len(tags)
        flat.extend(map(vocab.__getitem__, tags))
    raw_names = list(vocab)
    raw_occ = np.asarray(flat, dtype=np.int64)
    rows = np.repeat(np.arange(n_records, dtype=np.int64), lengths)
    raw_count = np.bincount(raw_occ, minlength=len(raw_names))

    # raw index -> canonical index (-1 = dropped), and why a raw string was dropped.
    raw_canon_str: list[str | None] = [None] * len(raw_names)
    dropped_why: dict[int, str] = {}
    if order == "reference":
        for r in np.flatnonzero(raw_count < alpha).tolist():
            dropped_why[r] = "frequency<alpha"
        for r in np.flatnonzero(raw_count >= alpha).tolist():
            raw_canon_str[r] = rule_normalize(raw_names[r])
    else:
        raw_canon_str = [rule_normalize(s) for s in raw_names]
    for r, c in enumerate(raw_canon_str):
        if c == "":
            raw_canon_str[r] = None
            dropped_why[r] = "rule:empty"
    canon_names = sorted({c for c in raw_canon_str if c is not None})  # sorted: index order = tie-break order
    canon_index = {c: i for i, c in enumerate(canon_names)}
    raw2canon = np.array([-1 if c is None else canon_index[c] for c in raw_canon_str], dtype=np.int64)
    n_after_rules = len(canon_names)
    if order == "reference":
        n_after_frequency = int((raw_count >= alpha).sum())  # the rules only saw these survivors
    else:
        valid = raw2canon >= 0
        canon_count = np.bincount(raw2canon[valid], weights=raw_count[valid], minlength=len(canon_names))
        rare = canon_count < alpha
        for r in np.flatnonzero(valid & rare[np.maximum(raw2canon, 0)]).tolist():
            dropped_why[r] = "frequency<alpha"
            raw2canon[r] = -1
        n_after_frequency = int((~rare).sum())

    occ = raw2canon[raw_occ]
    keep = occ >= 0
    rows, occ = _first_per_record(rows[keep], occ[keep], max(len(canon_names), 1))

    root = np.arange(len(canon_names))
    reasons: dict[int, str] = {}  # canonical index -> association reason
    if association and occ.size:
        doc_freq = np.bincount(occ, minlength=len(canon_names))
        parent, root, co = _association_parents(rows, occ, n_records, doc_freq, min_support, min_confidence)
        merged = np.flatnonzero(root != np.arange(len(canon_names)))
        if merged.size:
            # confidence and support of the merge actually applied (tag -> end of its chain)
            support = np.asarray(co[merged, root[merged]]).ravel()
            for c, s in zip(merged.tolist(), support.tolist()):
                reasons[c] = (f"association:{canon_names[root[c]]} conf={s / doc_freq[c]:.4f} support={s}"
                              + (f" via={canon_names[parent[c]]}" if parent[c] != root[c] else ""))
        rows, occ = _first_per_record(rows, root[occ], max(len(canon_names), 1))

    out = _by_record(ids, rows, occ, canon_names)
    tag_map = _tag_map(raw_names, raw_count, raw2canon, root, canon_names, dropped_why, reasons)
    stats = {
        "order": order, "alpha_used": int(alpha), "n_raw_tags": len(raw_names),
        "n_after_frequency": n_after_frequency, "n_after_rules": n_after_rules,
        "n_after_association": int(np.unique(occ).size), "n_association_merges": len(reasons),
        "n_records_in": n_records, "n_records_dropped": n_records - len(out), "n_records_out": len(out),
    }
    return out, tag_map, stats


def _most_frequent_raw(tag_map: Sequence[TagMapEntry]) -> dict[str, TagMapEntry]:
    best: dict[str, TagMapEntry] = {}
    for e in (e for e in tag_map if e.canonical is not None and not e.reason.startswith("association:")):
        if e.canonical not in best or (e.count, best[e.canonical].raw) > (best[e.canonical].count, e.raw):
            best[e.canonical] = e
    return best


def display_names(tag_map: Sequence[TagMapEntry]) -> dict[str, str]:
    """canonical tag -> its most frequent raw tag as written, for plots (two that read the same keep their stem)."""
    best = {c: " ".join(e.raw.split()) or c for c, e in _most_frequent_raw(tag_map).items()}
    seen = Counter(best.values())
    return {c: (label if seen[label] == 1 else f"{label} [{c}]") for c, label in sorted(best.items())}


def surface_forms(tag_map: Sequence[TagMapEntry]) -> dict[str, str]:
    """canonical tag -> its most frequent raw form, lowercased with non-word runs as spaces (ties: alphabetical).
    Stems are poor embedding inputs ("geometri", "creativ write"): embed these readable forms instead and map the
    labels back through this dict. Raw forms merged in by association do not count ("a" is not shown as its merge)."""
    best = _most_frequent_raw(tag_map)
    return {c: " ".join(_NON_WORD.sub(" ", e.raw.lower()).split()) for c, e in sorted(best.items())}


def _by_record(ids: Sequence[str], rows: np.ndarray, occ: np.ndarray, names: Sequence[str]) -> dict[str, list[str]]:
    """Group the (row-grouped) occurrence arrays back into record id -> tag names."""
    tag_names = np.asarray(names, dtype=object)[occ].tolist()
    counts = np.bincount(rows, minlength=len(ids))
    out: dict[str, list[str]] = {}
    start = 0
    for r in np.flatnonzero(counts).tolist():
        end = start + int(counts[r])
        out[ids[r]] = tag_names[start:end]
        start = end
    return out


def _tag_map(raw_names: Sequence[str], raw_count: np.ndarray, raw2canon: np.ndarray, root: np.ndarray,
             canon_names: Sequence[str], dropped_why: Mapping[int, str], reasons: Mapping[int, str]
             ) -> list[TagMapEntry]:
    """One entry per raw string, most frequent first (ties: alphabetical)."""
    entries = []
    for r, raw in enumerate(raw_names):
        c = int(raw2canon[r])
        if c < 0:
            entries.append(TagMapEntry(raw, None, dropped_why[r], int(raw_count[r])))
            continue
        final = canon_names[int(root[c])]
        reason = reasons.get(c) or ("kept" if final == raw else "rule")
        entries.append(TagMapEntry(raw, final, reason, int(raw_count[r])))
    entries.sort(key=lambda e: (-e.count, e.raw))
    return entries
