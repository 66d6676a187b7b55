"""`pahs-export`: model information, ONNX export and verification, TensorRT engines."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .cli_common import DEBUG_HELP, entry_point, new_app, not_implemented, parse_size
from .presets import DEFAULT_PRESET, PRESETS, get_preset

app = new_app("Export PAHS to ONNX and TensorRT, verify the exported graphs, show model size and compute.")

PresetOpt = Annotated[
    Optional[str],
    typer.Option("--preset", "-p", help=f"Model preset: {', '.join(PRESETS)} (default {DEFAULT_PRESET})."),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)]


@app.command()
def info(
    preset: PresetOpt = None,
    size: Annotated[Optional[str], typer.Option("--size", help="Frame size WxH for FLOPs (default 1280x720).")] = None,
    unidirectional: Annotated[bool, typer.Option("--unidirectional", help="Count the online model.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Parameters (total and per module) and FLOPs per frame of a preset."""
    from .info import model_info

    p = get_preset(preset or DEFAULT_PRESET)
    width, height = parse_size(size) if size else (1280, 720)
    if width % p.stride or height % p.stride:
        from .errors import PahsError

        raise PahsError(
            f"expected a size whose width and height are multiples of {p.stride}, found {width}x{height}; "
            f"try {width // p.stride * p.stride or p.stride}x{height // p.stride * p.stride or p.stride}"
        )
    mi = model_info(p.name, bidirectional=not unidirectional, width=width, height=height)
    direction = "bidirectional" if mi.bidirectional else "unidirectional"
    typer.echo(f"preset {p.name}: {p.description}; {direction}; c={p.channels}, h={p.hidden}, mid={p.mid}")
    typer.echo("")
    typer.echo(f"{'module':<32}{'parameters':>14}")
    for name, count in mi.params.items():
        typer.echo(f"{name:<32}{count:>14,}")
    typer.echo(f"{'total':<32}{mi.total_params:>14,}  ({mi.total_params / 1e6:.2f} M)")
    if p.paper_params:
        delta = (mi.total_params / 1e6 - p.paper_params) / p.paper_params
        typer.echo(f"{'paper (Table 1 / S8)':<32}{p.paper_params:>12.2f} M  ({delta:+.1%})")
    typer.echo("")
    typer.echo(f"FLOPs per frame at {width}x{height} (2 per multiply-add):")
    for role, flops in mi.flops.items():
        typer.echo(f"  {role:<30}{flops / 1e9:>14,.1f} GFLOP")
    typer.echo(f"  {'total':<30}{mi.total_flops / 1e9:>14,.1f} GFLOP  ({mi.total_flops / 1e12:.2f} TFLOP)")


@app.command()
def trt(debug: DebugOpt = False) -> None:
    """Build TensorRT engines from the exported ONNX graphs (not implemented yet)."""
    raise not_implemented("pahs-export trt", 7)


main = entry_point(app, "pahs-export")
