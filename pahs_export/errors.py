"""User-facing errors: one line saying what was expected, what was found and what to do."""


class PahsError(Exception):
    """An error the user can cause and fix; the CLIs print it as one line and exit non-zero."""
