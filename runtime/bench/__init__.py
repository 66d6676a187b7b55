"""`pahs-bench`: speed, memory and efficiency of every available backend and precision, side by side.

Every variant restores the same synthetic frames with the streaming bidirectional driver (lookahead N,
chunk K). Reported per variant: steady-state frames/s (median over repetitions, after a warm-up), the time
split per graph role, peak host memory (VmHWM, reset before each variant) and peak device memory, achieved
FLOP/s (model FLOPs per frame, counting (K+N)/K backward steps, over time) against this machine's ceiling
measured in the same run (a large FP32 matmul), and the ratio to torch eager FP32 in the same run (absolute
times drift on shared machines; ratios measured together do not).

Modules: :mod:`.measure` times one backend (runtime layer), :mod:`.report` holds and prints the results,
:mod:`.variants` makes the artifacts each variant needs and opens them through :mod:`runtime.engines`, and
:mod:`.cli` is the command.
"""
