"""What a stage's identity covers (issue 22, item 4): the modules of config objects at any depth, a user's own modules,
the LLM transport of a stage that calls the LLM, and the data files a stage reads (the DeepSpeed template, the test
sets export checks against, the questions infer answers). Each test edits one thing and expects a new identity."""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

import tacos.code_identity
from tacos.code_identity import is_project_module, object_modules
from tacos.stage_identity import code_version
from tacos.stages import get_stage


def _cfg(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _edited_package(tmp_path: Path, monkeypatch, rel: str) -> None:
    """A copy of tacos/ with `rel` edited, made the package the code identity reads."""
    package = tmp_path / "tacos"
    shutil.copytree(tacos.code_identity.PACKAGE_ROOT, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / rel).write_text((package / rel).read_text() + "\n# a fix\n")
    monkeypatch.setattr(tacos.code_identity, "PACKAGE_ROOT", package)


# -- modules of config objects -------------------------------------------------------------------------------------
def test_the_deepest_object_of_a_guarded_rating_judge_under_the_contrastive_scorer_counts(tmp_path, monkeypatch):
    """scorer -> rating-pair adapter -> guarded judge -> guard -> checks -> check -> completeness -> scoring model: 7
    levels down, past the old depth cap of 6, tacos/llm/likelihoods/transformers_lm.py computes the completeness signal."""
    cfg = _cfg("scorer/judge=guarded_llm_digit")
    from tacos.stage import component

    assert "tacos.llm.likelihoods.transformers_lm" in object_modules(component(cfg, "scorer"))
    before = code_version(get_stage("score"), cfg)
    _edited_package(tmp_path, monkeypatch, "llm/likelihoods/transformers_lm.py")
    assert code_version(get_stage("score"), cfg) != before


def _user_module(where: Path, name: str, text: str, monkeypatch) -> None:
    (where / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(where))
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_any_depth_cycles_and_a_users_own_modules(tmp_path, monkeypatch):
    import collections
    import fractions

    import numpy as np

    _user_module(tmp_path, "my_links", "class Link:\n    def __init__(self, child=None):\n        self.child = child\n",
                 monkeypatch)
    _user_module(tmp_path, "my_leaf", "from tacos.judges.parsers import JsonScore\n\n\nclass Leaf(JsonScore):\n"
                 "    pass\n", monkeypatch)
    from my_leaf import Leaf
    from my_links import Link

    head = node = Link()
    for _ in range(30):  # far deeper than any real config
        node.child = Link()
        node = node.child
    node.child = {"leaf": [Leaf(lo=1, hi=6)], "stdlib": collections.OrderedDict(f=fractions.Fraction(1, 3)),
                  "third_party": np.zeros(2), "back": head}  # a cycle back to the head
    found = object_modules(head)
    # the user's modules, the tacos base class of the user's subclass; no stdlib, no site-packages distribution
    assert found == {"my_links", "my_leaf", "tacos.judges.parsers"}
    assert is_project_module("my_leaf") and is_project_module("tacos.stage")
    assert not is_project_module("fractions") and not is_project_module("numpy") and not is_project_module("sys")


def test_a_users_own_target_class_is_in_the_stage_version(tmp_path, monkeypatch):
    """Before: object_modules kept only tacos modules, so an edit to a user's own tagger class left its outputs."""
    from omegaconf import OmegaConf

    versions = []
    for k, body in enumerate(("return 1", "return 2")):
        where = tmp_path / str(k)
        where.mkdir()
        _user_module(where, "my_tagger", f"class MyTagger:\n    uses_llm = False\n\n    def tag(self):\n        {body}\n",
                     monkeypatch)
        tacos.code_identity.is_project_module.cache_clear()  # a new process: the identity is computed once in one
        tacos.code_identity._code_identity.cache_clear()
        cfg = OmegaConf.create({"tagger": {"_target_": "my_tagger.MyTagger"}})
        versions.append(code_version(get_stage("tag"), cfg))
    assert versions[0] != versions[1]


def test_a_stage_that_calls_the_llm_follows_the_llm_transport(tmp_path, monkeypatch):
    """No stage imports the session, client or wire (the runner opens the session), yet they shape every answer."""
    cfg = _cfg()
    tag, normalize = get_stage("tag"), get_stage("normalize")
    assert tag.uses_llm(cfg) and not normalize.uses_llm(cfg)
    before = {s.name: code_version(s, cfg) for s in (tag, normalize)}
    _edited_package(tmp_path, monkeypatch, "llm/calling/wire.py")
    after = {s.name: code_version(s, cfg) for s in (tag, normalize)}
    assert after["tag"] != before["tag"] and after["normalize"] == before["normalize"]


# -- data files a stage reads ----------------------------------------------------------------------------------------
def test_an_edited_deepspeed_template_changes_the_train_identity(tmp_path, monkeypatch):
    from tacos.sft import recipe

    cfg = _cfg()
    shutil.copytree(recipe.ASSET_DIR, tmp_path / "train")
    monkeypatch.setattr(recipe, "ASSET_DIR", tmp_path / "train")
    before = get_stage("train").config_slice(cfg)
    kind = recipe.deepspeed_kind(*_components(cfg, "model", "train"))
    template = tmp_path / "train" / f"ds_{kind}.json"
    template.write_text(template.read_text().replace('"stage": 3', '"stage": 2'))
    assert get_stage("train").config_slice(cfg) != before


def _components(cfg, *groups):
    from tacos.stage import component

    return [component(cfg, g) for g in groups]


@pytest.fixture
def data_copy(tmp_path):
    """A copy of data/'s test sets and MT-Bench questions, and the config that reads it."""
    shutil.copytree(REPO / "data" / "test_sets", tmp_path / "data" / "test_sets")
    shutil.copytree(REPO / "data" / "mt_bench", tmp_path / "data" / "mt_bench")
    return tmp_path / "data", _cfg(f"paths.data_dir={tmp_path / 'data'}")


@pytest.mark.parametrize("edited, old, new", [("test_sets/koala.jsonl", "Can you list", "Could you list"),
                                             ("mt_bench/question.jsonl", "Compose an engaging", "Write an engaging")])
def test_an_edited_test_set_re_runs_infer(data_copy, edited, old, new):
    """Before: infer's identity held no question file, so after an edit the judge graded stale answers. Now it holds
    what the benchmarks ask, as read from their files (text, turns, sampling)."""
    data, cfg = data_copy
    before = get_stage("infer").config_slice(cfg)
    text = (data / edited).read_text()
    assert old in text
    (data / edited).write_text(text.replace(old, new, 1))
    assert get_stage("infer").config_slice(cfg) != before


def test_an_edited_test_set_re_runs_the_contamination_report(data_copy):
    data, cfg = data_copy
    before = get_stage("export").config_slice(cfg)
    (data / "test_sets" / "lima.jsonl").write_text((data / "test_sets" / "lima.jsonl").read_text() + "\n")
    assert get_stage("export").config_slice(cfg) != before


@dataclass
class _Tiny:
    x: int = 1


def test_object_modules_of_scalars_and_containers():
    assert object_modules({"a": [1, "s", None, 2.0], "b": (b"x",)}) == set()
    assert object_modules([_Tiny(), _Tiny]) == {__name__}
