"""Model size and compute against the paper and DESIGN.md."""

from __future__ import annotations

import pytest

from pahs_export import PRESETS
from pahs_export.info import model_info


@pytest.mark.parametrize("name", ["pahs", "pahs-s"])
def test_params_within_5_percent_of_paper(name):
    info = model_info(name)
    paper = PRESETS[name].paper_params
    assert abs(info.total_params / 1e6 - paper) / paper < 0.05


@pytest.mark.parametrize(
    ("name", "params_m", "tflop_720p", "tflop_368p"),
    [("pahs", 20.25, 5.83, 1.49), ("pahs-s", 4.61, 1.31, 0.34), ("pahs-t", 1.27, 0.37, 0.09)],
)
def test_matches_design_table(name, params_m, tflop_720p, tflop_368p):
    assert round(model_info(name).total_params / 1e6, 2) == params_m
    assert round(model_info(name, width=1280, height=720).total_flops / 1e12, 2) == tflop_720p
    assert round(model_info(name, width=640, height=368).total_flops / 1e12, 2) == tflop_368p


def test_per_module_counts_sum_to_total():
    info = model_info("pahs-t")
    assert sum(info.params.values()) == info.total_params
    assert set(info.flops) == {"forward", "backward", "fuse"}
    assert set(model_info("pahs-t", bidirectional=False).flops) == {"step"}
