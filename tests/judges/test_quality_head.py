"""The trained quality head: a RatingJudge that reads its weights file, rates by the logit, and names the weights in
its identity; the bundled weights are small and say how they were built."""
from __future__ import annotations

import json
import math

import pytest

from tacos.judges.base import JudgeContext
from tacos.judges.quality_head import DEFAULT_WEIGHTS, SCALARS, QualityHead
from tacos.records import Record

N = len(SCALARS) + 2 * 384


def weights_file(tmp_path, coef: dict[str, float], name: str = "w.json") -> str:
    data = {"model": "all-MiniLM-L6-v2", "mean": [0.0] * N, "scale": [1.0] * N, "intercept": 0.5,
            "coef": [coef.get(name, 0.0) for name in SCALARS] + [0.0] * (2 * 384)}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_a_known_weight_gives_a_known_order_and_the_weights_are_in_the_identity(tmp_path):
    head = QualityHead(weights=weights_file(tmp_path, {"log_chars": 1.0}))
    head.validate()
    rs = [Record.make(0, "Name a colour.", "", "Blue."), Record.make(1, "Name a colour.", "", "Blue, like the sky."),
          Record.make(2, "Name a colour.", "", "  ")]
    out = head.rate(rs, JudgeContext(progress=False))
    assert out[1].value > out[0].value and out[2].value is None and out[2].reason == "empty response"
    assert out[0].value == pytest.approx(0.5 + math.log1p(len("Blue.")), abs=1e-5)
    other = QualityHead(weights=weights_file(tmp_path, {"log_chars": 2.0}, "w2.json"))
    assert head.identity(JudgeContext())["weights_sha256"] != other.identity(JudgeContext())["weights_sha256"]


def test_the_bundled_weights_are_small_and_say_how_they_were_built():
    assert DEFAULT_WEIGHTS.stat().st_size < 200_000
    data = json.loads(DEFAULT_WEIGHTS.read_text())
    assert data["built_by"] == "scripts/train_quality_head.py" and len(data["coef"]) == N
    assert data["training"]["split"] == "source_split == train"
