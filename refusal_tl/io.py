"""Atomic writes: a result is either absent or complete, never half-written.

Every file goes to a temporary sibling first and is then renamed over the target
(``os.replace`` is atomic on POSIX and Windows), so an interrupted run never leaves a
truncated JSON or safetensors file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import save_file

from refusal_tl.errors import RefusalTLError


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) and check that it is writable."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RefusalTLError(
            f"cannot create output directory {path}: {err.strerror}. "
            "Choose a folder you can write to with --out / --run."
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RefusalTLError(
            f"output directory {path} is not writable. "
            "Fix its permissions or choose another folder with --out / --run."
        )
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and then move the temporary file onto ``path``."""
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def temp_dir(parent: Path, prefix: str) -> Path:
    """A temporary folder in ``parent`` for a result that is renamed into place when complete,
    with the usual permissions (``mkdtemp`` creates 0700, which the renamed result would keep)."""
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, default=json_default)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """The JSON in ``path``; a one-line error naming the file and the fix when it is unreadable."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RefusalTLError(f"{what} {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RefusalTLError(f"{path} is not a readable {what} ({type(err).__name__}); delete it and rerun.") from None


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def json_digest(obj: Any) -> str:
    """sha256 hex digest of ``obj`` as canonical JSON (keys of checkpoints and caches)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def tensor_digest(t) -> str:
    """Short sha256 of a tensor's float32 values (keys of checkpoints that depend on vectors)."""
    return hashlib.sha256(t.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, read in 16 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


# --- safetensors with JSON metadata --------------------------------------------------------

META_KEY = "refusal_tl"


def save_tensors(path: str | os.PathLike, tensors: dict[str, Any], meta: dict) -> Path:
    """Write ``tensors`` (name → tensor) and ``meta`` (JSON) into one safetensors file, atomically.

    The metadata travels inside the file (its header), so tensors and state can never be
    paired wrongly; no pickle is involved, so loading someone else's file runs no code.
    """
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {META_KEY: json.dumps(meta, default=json_default)}
    return atomic_write(path, lambda tmp: save_file(flat, str(tmp), metadata=header))


def load_tensors(path: str | os.PathLike, what: str = "refusal_tl file") -> tuple[dict[str, Any], dict]:
    """Read a file written by :func:`save_tensors`: (tensors, metadata); a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise RefusalTLError(f"{what} {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get(META_KEY, "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors and json raise their own error types
        raise RefusalTLError(f"{path} is not a readable {what} ({type(err).__name__}); delete it and rerun.") from None
    return tensors, meta
