"""`pahs-bench`: speed, memory and efficiency of every available backend and precision, side by side.

Every variant restores the same synthetic frames with the streaming bidirectional driver (lookahead N,
chunk K). Reported per variant: steady-state frames/s (median over repetitions, after a warm-up), the time
split per graph role, peak host memory (VmHWM, reset before each variant) and peak device memory, achieved
FLOP/s (model FLOPs per frame, counting (K+N)/K backward steps, over time), and the ratio to torch eager FP32
in the same run (absolute times drift on shared machines; ratios measured together do not). There is no
"share of peak": a measured matmul is no ceiling for convolution kernels or INT8, and a theoretical peak
needs a sustained clock that VMs do not report.

Modules: :mod:`.measure` times one backend (runtime layer), :mod:`.report` holds and prints the results,
:mod:`.variants` makes the artifacts each variant needs and opens them through :mod:`runtime.engines`, and
:mod:`.cli` is the command.
"""
