"""User-facing errors.

Every mistake a user can make at a boundary (a model name, a layer, a prompt file, a
direction file, an output folder) raises :class:`RefusalTLError` with a message that
names the fix. The CLI prints that one line and exits non-zero; library callers can
catch it like any ``ValueError``. Internal invariants use ``assert``.
"""

from __future__ import annotations

import inspect
from typing import Literal, get_args, get_origin


class RefusalTLError(ValueError):
    """A problem with the user's input, with the fix in its message."""


# --- checks for config dataclasses (``__post_init__``): one-line errors that name the fix -----


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise RefusalTLError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}.")


def literal_fields(cls: type) -> dict[str, tuple]:
    """The fields of dataclass ``cls`` (and its bases) annotated with a ``Literal``, with their values:
    the one place an option's choices are written (validation and the CLI's choices read them)."""
    out = {}
    for klass in reversed(cls.__mro__):
        for name, hint in inspect.get_annotations(klass, eval_str=True).items():
            if get_origin(hint) is Literal:
                out[name] = get_args(hint)
    return out


def check_literals(obj) -> None:
    """Every ``Literal``-annotated field of ``obj`` holds one of its values (a one-line error otherwise)."""
    for name, choices in literal_fields(type(obj)).items():
        check_choice(name, getattr(obj, name), choices)


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
