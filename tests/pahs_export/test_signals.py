"""Termination signals as a flag (pahs_export/signals.py), shared by pahs-run and pahs-train."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pahs_export.signals import Interrupted, check_interrupted, interrupted, signal_name, termination_handlers


def test_a_signal_sets_the_flag_and_the_previous_handler_comes_back():
    seen = []
    before = signal.signal(signal.SIGTERM, lambda *a: seen.append(a))
    try:
        with termination_handlers():
            assert interrupted() is None
            check_interrupted()  # nothing received: no raise
            os.kill(os.getpid(), signal.SIGTERM)
            assert interrupted() == signal.SIGTERM and not seen
            with pytest.raises(Interrupted, match="interrupted by SIGTERM") as e:
                check_interrupted()
            assert e.value.signum == signal.SIGTERM
        assert interrupted() is None  # the outermost block clears the flag on exit
        os.kill(os.getpid(), signal.SIGTERM)
        assert len(seen) == 1  # the caller's handler is back
    finally:
        signal.signal(signal.SIGTERM, before)


def test_nested_blocks_keep_the_flag_and_the_outermost_clears_it():
    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)  # not ignored, whatever the test runner inherited
    try:
        with termination_handlers():
            with termination_handlers():
                os.kill(os.getpid(), signal.SIGHUP)
            assert interrupted() == signal.SIGHUP  # the inner block's exit keeps it for the outer one to act on
        assert interrupted() is None
    finally:
        signal.signal(signal.SIGHUP, before)


def test_an_ignored_signal_stays_ignored():
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
    try:
        with termination_handlers():
            os.kill(os.getpid(), signal.SIGHUP)
            assert interrupted() is None
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_second_signal_ends_the_process_with_the_signals_default_action():
    code = textwrap.dedent(
        """
        import os, signal
        from pahs_export.signals import interrupted, termination_handlers
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not ignored, whatever the test runner inherited
        with termination_handlers():
            os.kill(os.getpid(), signal.SIGTERM)
            assert interrupted() == signal.SIGTERM
            print("first taken", flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            print("still running", flush=True)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGTERM, (result.returncode, result.stderr)
    assert result.stdout == "first taken\n"


def test_signal_names():
    assert signal_name(signal.SIGINT) == "SIGINT" and signal_name(1000) == "signal 1000"
