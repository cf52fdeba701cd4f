"""The loggers (tacos/tracking.py) say what a training child reports to; train.report_to=auto follows them."""
from __future__ import annotations

import pytest
from hydra.utils import instantiate

from test_configs import compose_cfg
from tacos.sft.spec import TrainConfig


@pytest.mark.parametrize("logger,expected", [("none", "none"), ("wandb", "wandb")])
def test_training_child_reports_where_the_logger_says(logger, expected):
    obj = instantiate(compose_cfg([f"logger={logger}"]).logger, _convert_="all")
    assert obj.training_report_to() == expected
    assert TrainConfig().reports_to(obj.training_report_to()) == expected  # train.report_to=auto
    assert TrainConfig(report_to="none").reports_to(obj.training_report_to()) == "none"
    assert TrainConfig(report_to="wandb").reports_to(obj.training_report_to()) == "wandb"
