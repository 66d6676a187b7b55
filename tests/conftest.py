"""Test tiers: default (CPU; `integration` marks its longest end-to-end checks, which `-m "not integration"` leaves
out for a quick inner loop), `slow` (--run-slow), `gpu` (needs CUDA), `trt` (needs TensorRT)."""

from __future__ import annotations

import faulthandler
import importlib.util

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def _skip_reasons(config: pytest.Config) -> dict[str, str | None]:
    return {
        "slow": None if config.getoption("--run-slow") else "slow test: run with --run-slow",
        "gpu": None if torch.cuda.is_available() else "needs a CUDA GPU: torch.cuda.is_available() is False",
        "trt": None
        if importlib.util.find_spec("tensorrt") is not None
        else "needs TensorRT: the tensorrt package is not importable (pip install 'pahs[trt]' on a GPU machine)",
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = _skip_reasons(config)
    for item in items:
        for marker, reason in reasons.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _faulthandler_armed(request: pytest.FixtureRequest) -> None:
    """Before each test, give SIGSEGV, SIGABRT and SIGBUS back to pytest's faulthandler: ``ray.shutdown()`` (the
    cluster tests, in-process runs with --cluster) leaves them at their default actions, and a later crash then
    ended the run with no traceback. ``faulthandler.enable`` alone does nothing while it believes it is installed."""
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key  # pytest's duplicate of the real stderr
    except ImportError:  # a pytest that keeps it elsewhere: no re-arming, the tests still run
        return
    fd = request.config.stash.get(fault_handler_stderr_fd_key, None)
    if fd is not None:
        faulthandler.disable()
        faulthandler.enable(file=fd)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Exports and calibration ranges go to a temporary cache, never the user's ~/.cache/pahs."""
    import os

    os.environ["PAHS_CACHE"] = str(tmp_path_factory.mktemp("pahs-cache"))
