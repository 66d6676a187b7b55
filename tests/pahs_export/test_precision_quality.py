"""FP16 and INT8 graphs of the default weights meet the quality targets on a generated held-out clip.

The full report (>= 100 frames, plots) is `pahs-export verify` on each precision artifact; this keeps CI
fast with 2 x 20 frames. Tolerances: pahs.verify.TOLERANCES (FP16 >= 45 dB vs FP32 at every frame;
INT8 >= 35 dB and <= 0.3 dB below FP32 against ground truth).
"""

from __future__ import annotations

import pytest

from calibration.data import DEFAULT_SET
from pahs.verify import TOLERANCES, verify_backend
from pahs_export import load_model
from pahs_export.artifact import read_artifact
from pahs_export.onnx_export import artifact_from_model
from pahs_export.precision import Int8Options
from pahs_export.weights import default_checkpoint
from runtime.backends.ort_backend import OnnxRuntimeBackend
from training.samples import sample_pair

pytestmark = pytest.mark.integration  # integration tier: INT8 and FP16 quality over clips of 20 frames


@pytest.mark.parametrize(("precision", "target"), [("fp16", None), ("int8", "tensorrt"), ("int8", "cpu")])
def test_quality_targets(precision, target, tmp_path):
    # The session's cache (tests/conftest.py): the calibration ranges computed here (keyed by the FP32 graph's
    # and the calibration frames' sha256 and the options) serve the later tests that export the default
    # weights to INT8 (pahs-bench, pahs-run --precision int8) instead of being computed again there.
    model = load_model(default_checkpoint("pahs-t"))
    int8 = Int8Options(target=target or "tensorrt")
    art = read_artifact(
        artifact_from_model(
            model,
            tmp_path / precision,
            source={"kind": "default"},
            precision=precision,
            int8=int8,
            calibration=DEFAULT_SET,
        )
    )
    clips = [sample_pair(20, 96, 64, seed=s) for s in (0, 1)]
    results = verify_backend(OnnxRuntimeBackend(art), model, clips, TOLERANCES[precision])
    for r in results:
        assert r.passed, (precision, r.worst_psnr, r.gt_drop)
        assert r.worst_psnr >= TOLERANCES[precision].min_psnr
