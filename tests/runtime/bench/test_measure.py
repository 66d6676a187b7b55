"""runtime.bench.measure: the timing helpers, on a fake clock so that the figures are exact."""

import pytest

from runtime.bench import measure


class FakeClock:
    """``perf_counter`` that moves only when a timed function says how long it took."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(measure.time, "perf_counter", fake)
    return fake


def test_interleaved_medians_alternates_runs_and_leaves_out_the_warm_up(clock: FakeClock) -> None:
    calls: list[str] = []
    # each run's durations by call: the first two calls are slow (warm-up), then a spread whose median is known
    durations = {"a": [9.0, 9.0, 1.0, 3.0, 2.0], "b": [7.0, 7.0, 5.0, 4.0, 6.0]}

    def run(key: str) -> None:
        calls.append(key)
        clock.now += durations[key][sum(c == key for c in calls) - 1]

    medians = measure.interleaved_medians({"a": lambda: run("a"), "b": lambda: run("b")}, reps=3, warmup=2)
    assert calls == ["a", "b"] * 5
    assert medians == {"a": 2.0, "b": 5.0}


def test_median_seconds_leaves_out_one_warm_up_call(clock: FakeClock) -> None:
    durations = iter([100.0, 1.0, 5.0, 2.0])

    def run() -> None:
        clock.now += next(durations)

    assert measure.median_seconds(run, reps=3) == 2.0
