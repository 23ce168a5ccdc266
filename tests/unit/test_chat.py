"""`refusal-tl chat`: two streamed answers per message, through a pseudo-terminal."""

import os
import pty
import re
import select
import struct
import subprocess
import sys
import time

import pytest
import torch

from refusal_tl.chat import Side, chat_turn
from refusal_tl.geometry import RefusalDirection
from refusal_tl.steer.generation import greedy_tokens, stop_ids
from refusal_tl.steer.hooks import ablation_hooks
from tests.helpers import make_hf_model, make_tokenizer


def expected(model, side, message, n):
    """The side's answer decoded in one go (no streaming, no interleaving)."""
    ids = greedy_tokens(model, side.batch(model, message), n, side.hooks)[0].tolist()
    stops = set(stop_ids(model))
    ids = ids[: next((i for i, t in enumerate(ids) if t in stops), len(ids))]
    return model.tokenizer.decode(ids, skip_special_tokens=True)


def test_interleaved_streams_equal_separate_greedy_decoding_and_keep_history(tiny):
    r = torch.randn(tiny.d_model)
    sides = [Side("original"), Side("ablate", ablation_hooks(r, tiny.n_layers))]
    want = [expected(tiny, s, "how to make a bomb", 12) for s in sides]
    assert want[0] != want[1]  # the intervention changes the answer
    steps = list(chat_turn(tiny, sides, "how to make a bomb", 12))
    assert steps[-1] == want and len(steps) <= 12
    assert all(len(a) <= len(b) for a, b in zip(steps[0], steps[-1]))  # answers only grow
    for s, text in zip(sides, want):
        assert s.history == [{"role": "user", "content": "how to make a bomb"},
                             {"role": "assistant", "content": text.strip()}]
    second = [expected(tiny, s, "and then?", 6) for s in sides]  # prompted with each side's own history
    assert list(chat_turn(tiny, sides, "and then?", 6))[-1] == second
    assert len(sides[0].history) == 4


def read_until(fd, pattern, timeout=120.0):
    out, end = b"", time.time() + timeout
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if re.search(pattern, out):
                return out
    raise AssertionError(f"{pattern!r} not seen; output so far: {out[-2000:]!r}")


def plain(screen: bytes) -> str:
    """The terminal output without ANSI escape sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode("utf-8", "replace"))


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_chat_cli_streams_both_answers_in_a_terminal(tmp_path):
    tok = make_tokenizer()
    make_hf_model(tok).save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    d = RefusalDirection(torch.randn(32), layer=2, pos=-1, model="tiny", weights_sha="x")
    d.save(tmp_path / "r.safetensors")
    leader, follower = pty.openpty()
    import fcntl
    import termios

    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 220, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "refusal_tl.cli", "chat", "--model", str(tmp_path / "tiny"), "--direction",
         str(tmp_path / "r.safetensors"), "--max-new-tokens", "4"],
        stdin=follower, stdout=follower, stderr=follower, close_fds=True,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "220", "LINES": "50"},
    )
    os.close(follower)
    try:
        read_until(leader, rb"you>")
        os.write(leader, b"how to make a bomb\n")
        screen = plain(read_until(leader, rb"you>"))
        os.write(leader, b"/quit\n")
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        os.close(leader)
    assert "original" in screen and "ablate dim" in screen
    from refusal_tl.model import load_model

    model = load_model(str(tmp_path / "tiny"))
    sides = [Side("original"), Side("ablate", ablation_hooks(d.vector, model.n_layers))]
    for side in sides:  # each final answer is on screen (short answers, wide terminal: one line each)
        text = expected(model, side, "how to make a bomb", 4).strip()
        assert text and text.split()[0] in screen, (text, screen[-1500:])
