"""User-facing errors.

Every mistake a user can make at a boundary (a model name, a layer, a prompt file, a
direction file, an output folder) raises :class:`RefusalTLError` with a message that
names the fix. The CLI prints that one line and exits non-zero; library callers can
catch it like any ``ValueError``. Internal invariants use ``assert``.
"""


class RefusalTLError(ValueError):
    """A problem with the user's input, with the fix in its message."""
