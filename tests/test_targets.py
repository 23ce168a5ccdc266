import torch

from conftest import PROMPTS
from refusal_tl.direction import RefusalDirection
from refusal_tl.targets import LENGTHS, make_targets


def test_targets_are_generated_checked_and_cached(tiny, tmp_path):
    dim = RefusalDirection(torch.randn(tiny.d_model), layer=2, pos=-1, model="tiny", weights_sha="tiny")
    t = make_targets(tiny, dim, PROMPTS[:4], PROMPTS[4:], cache_dir=tmp_path)
    assert len(t.answer.targets) == 4 and len(t.retain.targets) == 4
    assert all("." not in x for x in t.refusal.targets)  # cut at the first period
    for name, ts in (("answer", t.answer), ("refusal", t.refusal), ("retain", t.retain)):
        assert len(ts.drift) == len(ts.prompts)
        for prompt, target, drifted in zip(ts.prompts, ts.targets, ts.drift):
            n = len(tiny.chat.tokenize([prompt], [target]).ids[0]) - len(tiny.chat.tokenize([prompt]).ids[0])
            if n > LENGTHS[name]:  # re-tokenising produced more tokens than were generated
                assert drifted
    cached = list(tmp_path.glob("targets-*.json"))
    assert len(cached) == 1
    again = make_targets(tiny, dim, PROMPTS[:4], PROMPTS[4:], cache_dir=tmp_path)
    assert again.answer.targets == t.answer.targets and again.key == t.key
    other = RefusalDirection(torch.randn(tiny.d_model), layer=2, pos=-1, model="tiny", weights_sha="tiny")
    make_targets(tiny, other, PROMPTS[:4], PROMPTS[4:], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("targets-*.json"))) == 2  # keyed by direction
