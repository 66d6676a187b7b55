"""The graph contract: tensor shapes from a geometry, and the one frame-size rule."""

from __future__ import annotations

import pytest

from pahs_export import PahsError, get_preset
from pahs_export.contract import ROLES, Geometry, check_size_multiple

GEOMETRY = Geometry(channels=48, hidden=16, mid=32)


def test_output_shapes_follow_the_contract():
    assert GEOMETRY.output_shapes("forward", 2, 64, 96) == {"h": (2, 16, 16, 24), "feat": (2, 48, 16, 24)}
    assert GEOMETRY.output_shapes("fuse", 1, 32, 48) == {"restored": (1, 3, 32, 48)}
    assert list(GEOMETRY.output_shapes("step", 1, 32, 48)) == ["restored", "h", "feat"]


def test_symbolic_and_state_shapes():
    assert GEOMETRY.symbolic_shape("feat_bwd") == ["N", 48, "H/4", "W/4"]
    assert GEOMETRY.symbolic_shape("h_prev") == ["N", 16, "H/4", "W/4"]
    assert GEOMETRY.state_shapes(1, 64, 32) == ((1, 16, 16, 8), (1, 48, 16, 8))
    for spec in ROLES.values():  # every name the contract uses has a shape
        for name in spec.inputs + spec.outputs:
            assert len(GEOMETRY.symbolic_shape(name)) == 4


def test_preset_geometry():
    g = get_preset("pahs-s").geometry
    assert (g.channels, g.hidden, g.mid, g.size_multiple) == (92, 30, 61, 16)


@pytest.mark.parametrize(("size", "hint"), [((100, 64), "try 96x64"), ((8, 40), "try 16x32"), ((0, 16), "try 16x16")])
def test_size_rule_names_the_nearest_valid_size(size, hint):
    check_size_multiple(96, 64, 16)
    with pytest.raises(PahsError, match=rf"expected --max whose .* multiples of 16, found {size[0]}x{size[1]}; {hint}"):
        check_size_multiple(*size, 16, "--max")
