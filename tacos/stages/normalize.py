"""Stage `normalize`: frequency filter, rule aggregation (stem every word), association aggregation.

tag_map.jsonl lists every raw tag with its canonical tag (or null when dropped) and the reason, so every merge is
auditable. The settings are `normalize:` (tacos.method.tag_normalization.NormalizeSpec, validated before any stage).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict

from tacos.config import to_container
from tacos.records import iter_jsonl, write_jsonl
from tacos.stage import StageBase, StageResult


class NormalizeStage(StageBase):
    name, shareable, components = "normalize", True, ("normalize",)

    def requires(self, cfg) -> list[str]:
        return ["tag"]

    def config_slice(self, cfg) -> dict:
        return to_container(cfg.normalize)

    def run(self, ctx) -> StageResult:
        from tacos.method.tag_normalization import display_names, normalize_tags, surface_forms
        from tacos.plots import tag_frequency_histogram

        spec = ctx.component("normalize")
        raw: dict[str, list[str]] = {}
        for row in iter_jsonl(ctx.input_dir("tag") / "tags.jsonl"):
            if row["status"] == "ok" and row["tags"]:
                raw[row["id"]] = [t["tag"] for t in row["tags"]]
        alpha, support = spec.thresholds(len(raw))
        canonical, tag_map, stats = normalize_tags(
            raw, alpha=alpha, order=spec.order, association=spec.association.enabled,
            min_support=support, min_confidence=float(spec.association.min_confidence))
        write_jsonl(ctx.out_dir / "record_tags.jsonl", ({"id": k, "tags": v} for k, v in canonical.items()))
        write_jsonl(ctx.out_dir / "tag_map.jsonl", (asdict(e) for e in tag_map))
        # Stemmed forms embed badly ("creativ write"): the cluster stage embeds each canonical tag's most frequent
        # raw form.
        (ctx.out_dir / "surface_forms.json").write_text(
            json.dumps(surface_forms(tag_map), indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        raw_counts = Counter(t for tags in raw.values() for t in tags)
        canon_counts = Counter(t for tags in canonical.values() for t in tags)
        labels = display_names(tag_map)  # the plot shows each canonical tag as the tagger most often wrote it
        tag_frequency_histogram(raw_counts, ctx.out_dir / "raw_tag_frequency.png", title="Raw tags")
        tag_frequency_histogram(Counter({labels.get(t, t): n for t, n in canon_counts.items()}),
                                ctx.out_dir / "tag_frequency.png",
                                title="Tags after normalization (each shown in its most frequent written form)")
        ctx.add_plot(ctx.out_dir / "raw_tag_frequency.png")
        ctx.add_plot(ctx.out_dir / "tag_frequency.png")
        merges = [e for e in tag_map if e.reason.startswith("association")]
        ctx.add_table("association_merges", ["raw", "canonical", "reason", "count"],
                      [[e.raw, e.canonical, e.reason, e.count] for e in merges[:200]])
        return StageResult(
            counts={"records_in": len(raw), "records_out": len(canonical), "raw_tags": len(raw_counts),
                    "canonical_tags": len(canon_counts), "association_merges": len(merges)},
            stats={**stats, "alpha_configured": spec.alpha, "alpha_used": alpha, "min_support_used": support})


STAGE = NormalizeStage()
