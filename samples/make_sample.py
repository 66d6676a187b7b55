"""Makes samples/synthetic-blur.mp4: 60 blurry frames of held-out synthetic content (never used in training),
320x192 at 30 frames/s, H.264 crf 12. Reproduce with:  python samples/make_sample.py
"""

from pathlib import Path

from runtime.io import OutputOptions, VideoInfo, open_output
from training.samples import sample_pair

if __name__ == "__main__":
    from fractions import Fraction

    blurry, _ = sample_pair(60, 320, 192, seed=2026)
    out = Path(__file__).with_name("synthetic-blur.mp4")
    info = VideoInfo(320, 192, 60, Fraction(30), None, 0, 8, None, False, False)
    with open_output(out, info, options=OutputOptions(crf=12, overwrite=True)) as writer:
        for frame in blurry:
            writer.write(frame.permute(1, 2, 0).numpy())
    print(f"wrote {out}")
