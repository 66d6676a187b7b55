"""The console commands, one module each: `pahs-run` (:mod:`.run`), `pahs-export` (:mod:`.export`), `pahs-train`
and `pahs-eval` (:mod:`.train`), `pahs-bench` (:mod:`.bench`), and the conventions they share (:mod:`.common`).

Each entry point is ``main(argv=None) -> int``. A command module imports at its top only what its ``--help``
needs (no torch); the rest is imported inside the function that uses it.
"""
