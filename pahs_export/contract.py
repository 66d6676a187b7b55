"""The graph contract: which step graphs exist, their tensor names and shapes, and the frame-size rule.

Every exported graph is one time step with its recurrent state as explicit tensors: :data:`ROLES` names each
graph's inputs and outputs, and the table of them is docs/ARCHITECTURE.md, section 2 ("The graph contract").
N, H and W are dynamic; H and W are multiples of :attr:`Geometry.size_multiple` (16). The first step of a
sequence gets zeros. The model, the exporters and every backend take a :class:`Geometry` for the shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import PahsError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class RoleSpec:
    """One graph of the contract: its I/O names and the model method it wraps."""

    method: str  # the model's step method the graph contains one-to-one
    inputs: tuple[str, ...]  # input names, in call order
    outputs: tuple[str, ...]  # output names, in return order


ROLES: dict[str, RoleSpec] = {
    "forward": RoleSpec("forward_step", ("frame", "h_prev", "feat_prev"), ("h", "feat")),
    "backward": RoleSpec("backward_step", ("frame", "h_prev", "feat_prev"), ("h", "feat")),
    "fuse": RoleSpec("fuse", ("frame", "feat_fwd", "feat_bwd"), ("restored",)),
    "step": RoleSpec("step", ("frame", "h_prev", "feat_prev"), ("restored", "h", "feat")),
}
BIDIRECTIONAL_ROLES = ("forward", "backward", "fuse")
UNIDIRECTIONAL_ROLES = ("step",)


def roles_for(bidirectional: bool) -> tuple[str, ...]:
    """The graph roles of a bidirectional (forward, backward, fuse) or online (step) model."""
    return BIDIRECTIONAL_ROLES if bidirectional else UNIDIRECTIONAL_ROLES


def check_size_multiple(width: int, height: int, multiple: int, what: str = "frames", hint: str | None = None) -> None:
    """Raise a one-line :class:`PahsError` unless ``width`` and ``height`` are positive multiples of ``multiple``.

    ``what`` names the thing being checked (e.g. "a --size", "--max"); ``hint`` says what to do (default: the
    nearest smaller valid size, at least one ``multiple`` on each side).
    """
    if width >= multiple and height >= multiple and width % multiple == 0 and height % multiple == 0:
        return
    fit_w, fit_h = max(multiple, width // multiple * multiple), max(multiple, height // multiple * multiple)
    raise PahsError(
        f"expected {what} whose width and height are positive multiples of {multiple}, found {width}x{height}; "
        f"{hint or f'try {fit_w}x{fit_h}'}"
    )


@dataclass(frozen=True)
class Geometry:
    """The tensor geometry of one model: channel widths and the frame-size rule.

    Frames are [N, 3, H, W]; the state of one direction is ``h`` [N, hidden, H/4, W/4] and ``feat``
    [N, channels, H/4, W/4]; H and W are multiples of ``size_multiple``.
    """

    channels: int  # c: width of feat (f_L) and of f_B at H/4 x W/4
    hidden: int  # width of the hidden state h (c // 3)
    mid: int  # width of the half-resolution stage (2c // 3); recorded, not part of any graph's I/O
    size_multiple: int = 16  # H and W must be multiples of this (x4 extractor, x4 attention tokens)

    def symbolic_shape(self, name: str) -> list[str | int]:
        """Shape of contract tensor ``name``: ints for fixed axes, names (N, H, W, H/4, W/4) for dynamic ones."""
        if name in ("frame", "restored"):
            return ["N", 3, "H", "W"]
        width = self.hidden if name.startswith("h") else self.channels  # h, h_prev vs feat, feat_prev, feat_*
        return ["N", width, "H/4", "W/4"]

    def shape(self, name: str, n: int, height: int, width: int) -> tuple[int, ...]:
        """:meth:`symbolic_shape` with its dynamic axes filled in for ``n`` frames of ``height`` x ``width``."""
        env = {"N": n, "H": height, "W": width, "H/4": height // 4, "W/4": width // 4}
        return tuple(env[d] if isinstance(d, str) else d for d in self.symbolic_shape(name))

    def state_shapes(self, n: int, height: int, width: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of the zero state (h, feat) of a sequence of ``n`` frames of ``height`` x ``width``."""
        return self.shape("h", n, height, width), self.shape("feat", n, height, width)

    def output_shapes(self, role: str, n: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """Output name -> shape of the ``role`` graph for frames [n, 3, height, width], in the contract's order."""
        return {name: self.shape(name, n, height, width) for name in ROLES[role].outputs}

    def check_size(self, width: int, height: int, what: str = "frames", hint: str | None = None) -> None:
        """:func:`check_size_multiple` with this geometry's multiple."""
        check_size_multiple(width, height, self.size_multiple, what, hint)
