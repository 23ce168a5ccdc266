"""User-facing errors.

Every mistake a user can make at a boundary (a model name, a layer, a prompt file, a
direction file, an output folder) raises :class:`RefusalTLError` with a message that
names the fix. The CLI prints that one line and exits non-zero; library callers can
catch it like any ``ValueError``. Internal invariants use ``assert``.
"""


class RefusalTLError(ValueError):
    """A problem with the user's input, with the fix in its message."""


# --- checks for config dataclasses (``__post_init__``): one-line errors that name the fix -----


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise RefusalTLError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}.")


def check_positive(obj, *names: str) -> None:
    for name in names:
        if not getattr(obj, name) > 0:
            raise RefusalTLError(f"{name} must be > 0, got {getattr(obj, name)}.")


def check_at_least_one(obj, *names: str, optional: bool = False) -> None:
    for name in names:
        value = getattr(obj, name)
        if optional and value is None:
            continue
        if not isinstance(value, int) or value < 1:
            raise RefusalTLError(f"{name} must be a whole number ≥ 1, got {value!r}.")
