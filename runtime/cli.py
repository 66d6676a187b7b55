"""`pahs-run`: deblur a video with an exported PAHS artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pahs_export.cli_common import DEBUG_HELP, entry_point, new_app, not_implemented

app = new_app("Deblur a video (or a folder of frames) with PAHS.")


@app.command()
def run(
    video: Annotated[Path, typer.Argument(help="Input video file or folder of frames.")],
    engine: Annotated[
        Optional[Path], typer.Option("--engine", "-e", help="Exported artifact (ONNX folder or .plan).")
    ] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output video or frame folder.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False,
) -> None:
    """Deblur VIDEO (not implemented yet)."""
    raise not_implemented("pahs-run", 5)


main = entry_point(app, "pahs-run")
