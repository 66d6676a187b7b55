"""The validation suite: one fixed set of held-out sequences across five sources, reported as one row each.

Fixed in code before the long training campaign started and never to be changed after (sizes, crops, blur
lengths, seeds, frame counts), so that figures stay comparable across runs and machines. ``pahs-eval --suite
DATA`` scores it, ``DATA`` being a folder that holds ``x4k1000fps/``, ``video/`` and ``photos/``.

| row | source (held out) | blur | sequences x frames |
| --- | --- | --- | --- |
| ``x4k`` | X4K1000FPS TEST01/05/08/11/14, whole frames at 1024x540 | real: 9/17/25 frames at 1000 fps | 15 x 3-7 |
| ``set8`` | Set8's four GoPro clips, 2x down in linear light, 480x256 | hand-held shake, 10-25 px, k=11 | 4 x 8 |
| ``davis`` | DAVIS blackswan, car-roundabout, dance-twirl, kite-surf, parkour, 2x down, 416x240 | same | 5 x 8 |
| ``set14`` | the 14 Set14 photos, up to 256x256 | same | 14 x 6 |
| ``synthetic`` | the procedural held-out set of ``pahs-eval`` (14 sequences, 256x160) | 4-50 px | 14 x 10 |

The ``x4k`` row is the mean of its small / medium / large groups (each also shown). Every row gives the
blurry and restored PSNR, the gain, the restored SSIM and the sequence with the smallest gain; the **suite mean**
is the unweighted mean of the five rows' gains. No degradation (noise, compression) is added: the shake rows
measure blur alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pahs_export.errors import PahsError
from pahs_export.model import PAHS
from pahs_export.presets import DEFAULT_LOOKAHEAD

from .evaluate import EVAL_FRAMES, EVAL_SEQUENCES, EVAL_SIZE, EvalReport, evaluate, synthetic_sequences
from .highfps import heldout_sequences
from .shake import HeldOutShake, heldout_shake_sequences

ROWS = ("x4k", "set8", "davis", "set14", "synthetic")
SHAKE_ROWS: dict[str, HeldOutShake] = {
    "set8": HeldOutShake("video", "video", "set8-gopro", 8, (256, 480)),
    "davis": HeldOutShake("video", "video", "davis", 8, (240, 416)),
    "set14": HeldOutShake("photos", "photos", "set14", 6, (256, 256)),
}
# The training log's validation: a fixed subset of the suite (the first sequences of some rows), cheap enough
# to run every few hundred steps.
VALIDATION_SUBSET: dict[str, int] = {"set8": 1, "davis": 2, "set14": 3, "synthetic": 4}
VALIDATION_FRAMES = 4
VALIDATION_SIZE = (160, 224)  # (height, width) cap of the shake rows in the subset


def _shake_sequences(
    data: Path, name: str, limit: int | None = None, frames: int | None = None, size: tuple[int, int] | None = None
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    spec = SHAKE_ROWS[name]
    return heldout_shake_sequences(data / spec.folder, spec, ROWS.index(name), name, limit, frames, size)


def suite_sequences(data: str | Path, name: str) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """The (name, blurry, sharp) sequences of suite row ``name``, frames [T,3,H,W] float32 sRGB in [0, 1]."""
    data = Path(data)
    if name == "x4k":
        for seq_name, blurry, sharp in heldout_sequences(data / "x4k1000fps"):
            yield f"x4k/{seq_name}", blurry, sharp
    elif name == "synthetic":
        for seq_name, blurry, sharp in synthetic_sequences(EVAL_SEQUENCES, EVAL_FRAMES, *EVAL_SIZE):
            yield f"synthetic/{seq_name}", blurry, sharp
    elif name in SHAKE_ROWS:
        yield from _shake_sequences(data, name)
    else:
        raise PahsError(f"expected a suite row among {', '.join(ROWS)}, found {name!r}")


def validation_sequences(data: str | Path) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """The training log's fixed validation subset of the suite (see :data:`VALIDATION_SUBSET`)."""
    data = Path(data)
    out: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    for name, count in VALIDATION_SUBSET.items():
        if name == "synthetic":
            width, height = EVAL_SIZE
            seqs = synthetic_sequences(count, VALIDATION_FRAMES, width, height)
            out += [(f"synthetic/{n}", b, s) for n, b, s in seqs]
        else:
            out += list(_shake_sequences(data, name, count, VALIDATION_FRAMES, VALIDATION_SIZE))
    return out


@dataclass
class SuiteReport:
    """Per-row :class:`EvalReport` of the suite; rows are gains in dB over the blurry input."""

    rows: dict[str, EvalReport] = field(default_factory=dict)

    def row(self, name: str) -> dict[str, float | str]:
        report = self.rows[name]
        if name == "x4k":  # the mean of the three blur groups, each a mean over its frames
            groups = list(report.groups.values())
            values = {k: float(np.mean([g[k] for g in groups])) for k in ("blurry_psnr", "restored_psnr")}
            values["restored_ssim"] = float(np.mean([g["restored_ssim"] for g in groups]))
        else:
            o = report.overall
            values = {k: o[k] for k in ("blurry_psnr", "restored_psnr", "restored_ssim")}
        worst = min(report.sequences, key=lambda s: s.restored_psnr - s.blurry_psnr)
        return values | {
            "gain": values["restored_psnr"] - values["blurry_psnr"],
            "worst": worst.name,
            "worst_gain": worst.restored_psnr - worst.blurry_psnr,
            "sequences": len(report.sequences),
        }

    @property
    def mean_gain(self) -> float:
        """The suite mean: the unweighted mean of the rows' gains."""
        return float(np.mean([self.row(name)["gain"] for name in self.rows]))

    def to_json(self) -> dict:
        rows = {name: self.row(name) for name in self.rows}
        groups = {name: report.groups for name, report in self.rows.items() if report.groups}
        details = {name: report.to_json()["sequences"] for name, report in self.rows.items()}
        return {"suite_mean_gain": self.mean_gain, "rows": rows, "groups": groups, "sequences": details}

    def table(self) -> str:
        head = f"{'set':<12}{'seqs':>5}{'blurry PSNR':>13}{'restored PSNR':>15}{'gain':>8}{'SSIM':>8}  worst sequence"
        lines = [head]
        for name in self.rows:
            r = self.row(name)
            lines.append(
                f"{name:<12}{r['sequences']:>5}{r['blurry_psnr']:>13.2f}{r['restored_psnr']:>15.2f}"
                f"{r['gain']:>+8.2f}{r['restored_ssim']:>8.4f}  {r['worst']} ({r['worst_gain']:+.2f})"
            )
            if name == "x4k":
                for group, v in self.rows[name].groups.items():
                    gain = v["restored_psnr"] - v["blurry_psnr"]
                    lines.append(
                        f"{'  ' + group:<12}{v['sequences']:>5}{v['blurry_psnr']:>13.2f}{v['restored_psnr']:>15.2f}"
                        f"{gain:>+8.2f}{v['restored_ssim']:>8.4f}"
                    )
        lines.append(f"{'suite mean':<12}{'':>5}{'':>13}{'':>15}{self.mean_gain:>+8.2f}")
        return "\n".join(lines)


def run_suite(
    model: PAHS,
    data: str | Path,
    rows: tuple[str, ...] = ROWS,
    lookahead: int | None = DEFAULT_LOOKAHEAD,
    pictures: str | Path | None = None,
    announce=None,
) -> SuiteReport:
    """Score ``model`` on the suite's ``rows``. ``pictures``: a folder for the evaluation's side-by-side PNGs
    (one per sequence). ``announce``: wraps each row's sequence iterator (progress messages)."""
    report = SuiteReport()
    for name in rows:
        seqs = suite_sequences(data, name)
        if announce is not None:
            seqs = announce(seqs)
        report.rows[name] = evaluate(model, seqs, lookahead, pictures)
    return report


SHIP_TOLERANCE = 0.1  # dB a row may lose against a reference and still ship


def shipping_problems(candidate: dict, shipped: dict, others: dict[str, dict] | None = None) -> list[str]:
    """Why weights scored ``candidate`` may not replace the shipped ones (empty: they may), by the rule that
    protects users: the suite mean rises over ``shipped``'s, and no row loses more than :data:`SHIP_TOLERANCE`
    against ``shipped`` nor against any of ``others`` (e.g. ``{"stage 3": report}``). Reports are
    :meth:`SuiteReport.to_json` dicts of the same rows."""
    problems = []
    if candidate["suite_mean_gain"] <= shipped["suite_mean_gain"]:
        problems.append(
            f"suite mean {candidate['suite_mean_gain']:+.2f} dB does not rise over the shipped "
            f"{shipped['suite_mean_gain']:+.2f} dB"
        )
    for label, reference in {"shipped": shipped, **(others or {})}.items():
        missing = set(reference["rows"]) - set(candidate["rows"])
        if missing:
            problems.append(f"rows {', '.join(sorted(missing))} of the {label} report are not scored")
        for row, ref in reference["rows"].items():
            if row in candidate["rows"] and candidate["rows"][row]["gain"] < ref["gain"] - SHIP_TOLERANCE:
                problems.append(
                    f"{row} gains {candidate['rows'][row]['gain']:+.2f} dB against {ref['gain']:+.2f} with the "
                    f"{label} weights (more than {SHIP_TOLERANCE} dB lost)"
                )
    return problems
