"""The stages a command asks for: `python run.py dataset=alpaca model=mistral7b` selects and then trains (run.py applies
this before the runner starts), and a choice that no stage of the run uses is named in one line."""
from __future__ import annotations

# -- the stages a command asks for -------------------------------------------------------------------------------
# Choosing one of these groups on the command line asks for these stages (added to the default selection stages).
_EVALUATE = ("train", "infer", "judge", "report")
ASKS_FOR = {"model": ("train",), "train": ("train",), "judge": _EVALUATE, "benchmarks": _EVALUATE,
            "benchmark": _EVALUATE}
# The stages that use a group: a group chosen on the command line that none of the run's stages uses is named.
USED_BY = {"model": ("train", "infer"), "train": ("train",), "infer": ("infer",), "judge": ("judge",),
           "benchmarks": ("infer", "judge"), "benchmark": ("infer", "judge"), "tagger": ("tag",), "clustering": ("cluster",), "scorer": ("score",),
           "selection": ("select",), "guard": ("score",), "refine": ("refine",)}


def chosen_groups(overrides: list[str]) -> dict[str, str]:
    """group -> the override that chose it (`model=mistral7b`, `scorer/judge=llm_text` counts for scorer,
    `+benchmark@benchmarks.x=y` for benchmark); `key.sub=value` settings are not group choices."""
    out = {}
    for override in overrides:
        key = str(override).split("=", 1)[0].lstrip("+~")
        if "." in key.split("@", 1)[0] or "=" not in str(override):
            continue
        group = key.split("@", 1)[0].split("/", 1)[0]
        out.setdefault(group, str(override).lstrip("+~"))
    return out


def stages_for_command(stages: list[str], overrides: list[str], order: tuple[str, ...]) -> list[str]:
    """The stages a command asks for. `stages=[...]` on the command line or an experiment overlay (which sets its
    own) are kept as they are; otherwise choosing a model (or train settings) adds `train`, choosing a judge, a
    benchmark preset or a benchmark adds train, infer, judge and report to the default selection stages."""
    keys = {str(o).split("=", 1)[0].lstrip("+~") for o in overrides}
    if "stages" in keys or "experiment" in keys:
        return list(stages)
    wanted = set(stages)
    for group in chosen_groups(overrides):
        wanted |= set(ASKS_FOR.get(group, ()))
    return sorted(wanted, key=lambda s: order.index(s) if s in order else len(order))


def unused_choices(stages: list[str], overrides: list[str], order: tuple[str, ...] = ()) -> str | None:
    """One line naming the groups chosen on the command line that no stage of the run uses, or None."""
    notes = []
    for group, override in chosen_groups(overrides).items():
        users = USED_BY.get(group)
        if users and not set(users) & set(stages):
            later = not order or not stages or all(order.index(u) > order.index(stages[-1]) for u in users
                                                   if u in order and stages[-1] in order)
            where = f"stages end at {stages[-1]}" if stages and later else f"stages are [{','.join(stages)}]"
            notes.append(f"{override} is not used: {where} (add {users[0]} to stages)")
    return "; ".join(notes) or None
