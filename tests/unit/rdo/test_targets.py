import torch

from helpers import PROMPTS
from refusal_tl.geometry import RefusalDirection
from refusal_tl.rdo.targets import drifted, make_targets


def test_targets_are_generated_checked_and_cached(tiny, tmp_path):
    dim = RefusalDirection(torch.randn(tiny.d_model), layer=2, pos=-1, model="tiny", weights_sha="tiny")
    t = make_targets(tiny, dim, PROMPTS[:4], PROMPTS[4:], cache_dir=tmp_path)
    assert len(t.answer.targets) == 4 and len(t.retain.targets) == 4
    assert all("." not in x for x in t.refusal.targets)  # cut at the first period
    for ts in (t.answer, t.refusal, t.retain):
        assert len(ts.drift) == len(ts.prompts) == 4
    cached = list(tmp_path.glob("targets-*.json"))
    assert len(cached) == 1
    again = make_targets(tiny, dim, PROMPTS[:4], PROMPTS[4:], cache_dir=tmp_path)
    assert again.answer.targets == t.answer.targets and again.key == t.key
    other = RefusalDirection(torch.randn(tiny.d_model), layer=2, pos=-1, model="tiny", weights_sha="tiny")
    make_targets(tiny, other, PROMPTS[:4], PROMPTS[4:], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("targets-*.json"))) == 2  # keyed by direction


def test_drift_flags_a_target_that_re_tokenises_differently(tiny):
    """A generation spelled with single-byte tokens re-tokenises into merged tokens: drift."""
    prompt, text = PROMPTS[0], " the sea"
    canonical = tiny.tokenizer(text, add_special_tokens=False).input_ids
    assert len(canonical) < len(text)  # the BPE merges this text
    byte_ids = [tiny.tokenizer.convert_tokens_to_ids(c) for c in tiny.tokenizer.convert_ids_to_tokens(canonical)
                for c in c]
    assert drifted(tiny, prompt, text, byte_ids)
    assert not drifted(tiny, prompt, text, canonical + [tiny.tokenizer.eos_token_id])  # end of turn ignored
    assert not drifted(tiny, prompt, text, canonical + byte_ids, prefix=True)  # cut targets: a prefix suffices
    assert drifted(tiny, prompt, text, byte_ids, prefix=True)
