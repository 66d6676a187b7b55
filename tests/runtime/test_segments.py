"""One video restored in segments: the plan, parity with the single run (exact and warmed up), the jobs and
the join (frame count, rate, timestamps, audio, nothing left behind)."""

from __future__ import annotations

import json
import os
import pickle
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from conftest import make_video

from pahs_export import PahsError, build_model
from pahs_export.artifact import read_artifact
from runtime.backends.ort_backend import OnnxRuntimeBackend
from runtime.backends.torch_backend import TorchBackend
from runtime.driver import restore_range, restore_stream
from runtime.io import OutputOptions, open_input
from runtime.jobs import Job, JobResult
from runtime.pipeline import RunOptions, pad_frame, run_video
from runtime.segments import (
    PART_FRAMES,
    PART_META,
    Segment,
    SegmentJob,
    load_state,
    output_bits,
    plan_segments,
    record_states,
    restore_segmented,
    run_in_order,
)

K, N = 4, 3  # chunk and lookahead of these tests


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Frames of 32x48 gain nothing from threads, and threads that spin on a busy shared machine are many
    times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def backend():
    torch.manual_seed(31)
    return TorchBackend(build_model("pahs-t"))


def clip(t: int, seed: int = 0) -> torch.Tensor:
    """[T,3,32,48] frames quantised to k/255, as decoded 8-bit video is."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (t, 3, 32, 48), generator=g).float() / 255


def single(backend, x) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack(list(restore_stream(backend, iter(x), N, K)))


def segment_run(backend, x, seg: Segment, warmup: int, state=None) -> torch.Tensor:
    first = seg.start if state is not None else seg.first_read(warmup)
    with torch.no_grad():
        frames = iter(x[first : seg.read_end])
        return torch.stack(list(restore_range(backend, frames, seg.start, seg.end, seg.start - first, N, K, state)))


def decoded(path) -> tuple[list[np.ndarray], list[int], Fraction, Fraction, int]:
    """(frames, pts, average rate, time base, audio packets) of a video file."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [(f.to_ndarray(format="rgb24"), f.pts) for f in c.decode(v)]
        rate, tb = v.average_rate, v.time_base
    with av.open(str(path)) as c:
        audio = sum(1 for p in c.demux(c.streams.audio) if p.size) if c.streams.audio else 0
    return [f for f, _ in frames], [p for _, p in frames], rate, tb, audio


# -- the plan -------------------------------------------------------------------------------------------------


def test_plan_boundaries_fall_on_multiples_of_the_chunk():
    plan = plan_segments(30, 10, K, N)  # 10 rounds down to 8
    assert [(s.start, s.end, s.read_end) for s in plan] == [(0, 8, 11), (8, 16, 19), (16, 24, 27), (24, 30, 30)]
    assert [s.index for s in plan] == [0, 1, 2, 3]
    assert all(s.start % K == 0 for s in plan)
    assert plan_segments(8, 32, K, N) == [Segment(0, 0, 8, 8)]


def test_segments_shorter_than_the_chunk_are_refused_in_one_line():
    with pytest.raises(PahsError, match=r"--segment-frames of at least --chunk \(4\), found 3") as e:
        plan_segments(30, 3, K, N)
    assert "\n" not in str(e.value)


# -- parity with the single run -------------------------------------------------------------------------------


def test_first_segment_is_the_single_run_bit_for_bit(backend):
    x = clip(24, seed=1)
    seg = plan_segments(len(x), 8, K, N)[0]
    assert torch.equal(segment_run(backend, x, seg, warmup=5), single(backend, x)[: seg.end])


@pytest.fixture(scope="module")
def ort_backend(artifact):
    return OnnxRuntimeBackend(read_artifact(artifact), threads=1)


@pytest.mark.parametrize("kind", ["torch", "onnxruntime"])
def test_exact_mode_is_the_single_run_bit_for_bit(kind, request, tmp_path):
    """States recorded by the forward-only pass, saved and read back: every segment equals the single run."""
    backend = request.getfixturevalue("backend" if kind == "torch" else "ort_backend")
    src = make_video(tmp_path / "in.mp4", n=22, width=48, height=32)
    plan = plan_segments(22, 8, K, N)
    states = record_states(backend, src, plan, tmp_path)
    assert sorted(states) == [1, 2] and all(p.suffix == ".npz" for p in states.values())
    with open_input(src) as r:
        x = torch.stack([pad_frame(f.image, backend.size_multiple) for f in r])
    whole = single(backend, x)
    for seg in plan:
        state = load_state(states[seg.index], backend.device) if seg.index in states else None
        assert torch.equal(segment_run(backend, x, seg, 0, state), whole[seg.start : seg.end]), seg


def test_warmup_error_falls_and_a_warmup_from_frame_0_is_exact(backend):
    x = clip(32, seed=2)
    whole = single(backend, x)
    seg = plan_segments(len(x), 16, K, N)[1]  # frames [16, 32)
    errors = {w: (segment_run(backend, x, seg, w) - whole[16:32]).abs().max().item() for w in (0, 8, 16)}
    assert errors[16] == 0  # the warm-up reaches frame 0: the single run's forward state
    assert errors[0] > errors[8] > 0


# -- jobs and the join ----------------------------------------------------------------------------------------


def test_segment_job_is_a_picklable_job(tmp_path):
    job = SegmentJob("/videos/clip.mp4", Segment(1, 256, 512, 531), str(tmp_path / "p"), 19, 32, 16)
    typed: Job = job  # the protocol, checked by mypy; here: what executors use
    assert (typed.name, typed.output, callable(typed.run)) == ("clip.mp4 frames 256-511", str(tmp_path / "p"), True)
    assert job.name == "clip.mp4 frames 256-511"
    assert pickle.loads(pickle.dumps(job)) == job
    with pytest.raises(AttributeError):
        job.warmup = 3  # type: ignore[misc]


def test_parts_are_as_deep_as_what_the_output_quantises_to(tmp_path):
    src8 = make_video(tmp_path / "a.mp4", n=2, width=48, height=32)
    src10 = make_video(tmp_path / "b.mp4", n=2, width=48, height=32, pix_fmt="yuv420p10le")
    with open_input(src8) as r8, open_input(src10) as r10:
        i8, i10 = r8.info, r10.info
    out = str(tmp_path / "out.mp4")
    assert output_bits(out, i8, src8, OutputOptions()) == 8
    assert output_bits(out, i10, src10, OutputOptions()) == 16
    assert output_bits(out, i8, src8, OutputOptions(pix_fmt="yuv420p10le")) == 16
    assert output_bits(str(tmp_path / "out.mkv"), i10, src10, OutputOptions(lossless=True)) == 16


def test_exact_segmented_output_equals_the_single_run_with_timing_and_audio(backend, tmp_path):
    """The joined file decodes to the single run's frames, with the source's frame count, rate, timestamps and
    audio; the work folder is gone."""
    src = make_video(tmp_path / "in.mp4", n=30, width=48, height=32, fps=24, audio=True)
    options = RunOptions(lookahead=N, chunk=K, output=OutputOptions(lossless=True), progress=False)
    run_video(src, str(tmp_path / "single.mp4"), backend, options)
    calls = []

    def backwards(jobs, open_backend):  # another executor: the jobs in reverse order, results in job order
        calls.append(len(jobs))
        be = open_backend()
        done = {job.name: JobResult(job.name, job.output, "done", job.run(be)) for job in reversed(jobs)}
        return [done[job.name] for job in jobs]

    run = restore_segmented(
        src, str(tmp_path / "seg.mp4"), lambda: backend, options, segment_frames=8, exact=True, execute=backwards
    )
    assert calls == [4] and run.frames == 30 and len(run.segments) == 4 and run.exact
    got, want, source = decoded(tmp_path / "seg.mp4"), decoded(tmp_path / "single.mp4"), decoded(src)
    assert len(got[0]) == 30
    assert all(np.array_equal(a, b) for a, b in zip(got[0], want[0], strict=True))
    assert got[1] == source[1] and got[2] == source[2] and got[3] == source[3]  # pts, rate, time base
    assert got[4] > 0 and got[4] == source[4]  # every audio packet copied
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "seg.mp4", "single.mp4"]  # no work folder, no partials


def test_deep_sources_are_joined_from_16_bit_parts_exactly(backend, tmp_path):
    src = make_video(tmp_path / "in.mp4", n=12, width=48, height=32, pix_fmt="yuv420p10le")
    options = RunOptions(lookahead=N, chunk=K, output=OutputOptions(lossless=True), progress=False)
    run_video(src, str(tmp_path / "single.mkv"), backend, options)
    restore_segmented(src, str(tmp_path / "seg.mkv"), lambda: backend, options, 4, exact=True)
    with open_input(tmp_path / "seg.mkv") as got, open_input(tmp_path / "single.mkv") as want:
        assert got.info.bit_depth == 16
        assert all(np.array_equal(a.image, b.image) for a, b in zip(got, want, strict=True))


def test_warmed_up_segments_join_into_the_whole_video(backend, tmp_path):
    """The default executor, warm-up mode, Matroska: every frame once, in order, at the source's rate; the
    first segment's frames are the single run's."""
    src = make_video(tmp_path / "in.mp4", n=20, width=48, height=32, fps=25, audio=True)
    options = RunOptions(lookahead=N, chunk=K, output=OutputOptions(lossless=True), progress=False)
    run_video(src, str(tmp_path / "single.mkv"), backend, options)
    run = restore_segmented(src, str(tmp_path / "seg.mkv"), lambda: backend, options, segment_frames=8, warmup=2)
    assert run.frames == 20 and not run.exact and run.warmup == 2
    assert [r.status for r in run.results] == ["done"] * 3
    got, want = decoded(tmp_path / "seg.mkv"), decoded(tmp_path / "single.mkv")
    assert len(got[0]) == 20 and got[1] == want[1] and got[2] == want[2] and got[4] > 0
    assert all(np.array_equal(a, b) for a, b in zip(got[0][:8], want[0][:8], strict=True))
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "seg.mkv", "single.mkv"]


def test_part_folder_holds_lossless_frames_and_source_timestamps(backend, tmp_path):
    src = make_video(tmp_path / "in.mp4", n=14, width=48, height=32)
    job = SegmentJob(str(src), plan_segments(14, 8, K, N)[1], str(tmp_path / "part"), N, K, warmup=4)
    (result,) = run_in_order([job], lambda: backend)
    assert result.status == "done" and result.frames == 6
    assert sorted(os.listdir(tmp_path / "part")) == sorted([PART_FRAMES, PART_META])
    meta = json.loads((tmp_path / "part" / PART_META).read_text())
    assert (meta["start"], meta["end"], len(meta["pts"])) == (8, 14, 6)
    assert meta["pts"] == decoded(src)[1][8:14]


def test_a_failed_segment_leaves_no_output_and_no_work_folder(backend, tmp_path):
    src = make_video(tmp_path / "in.mp4", n=12, width=48, height=32)

    def failing(jobs, open_backend):
        return [JobResult(j.name, j.output, "failed", error="worker lost") for j in jobs]

    options = RunOptions(lookahead=N, chunk=K, progress=False)
    with pytest.raises(PahsError, match=r"in\.mp4 frames 0-7 failed \(worker lost\)") as e:
        restore_segmented(src, str(tmp_path / "out.mp4"), lambda: backend, options, 8, execute=failing)
    assert "\n" not in str(e.value)
    assert os.listdir(tmp_path) == ["in.mp4"]


def test_lookahead_all_is_refused_in_one_line(backend, tmp_path):
    src = make_video(tmp_path / "in.mp4", n=4, width=48, height=32)
    with pytest.raises(PahsError, match="expected a number for --lookahead with --segment-frames, found all"):
        restore_segmented(src, str(tmp_path / "o.mp4"), lambda: backend, RunOptions(lookahead=None), 8)
