"""The offline capability proxy: CE of the model's own completions, with and without the intervention."""

import torch
import torch.nn.functional as F

from refusal_tl.eval.capability import LABEL, capability_proxy, completion_ce
from refusal_tl.geometry import RefusalDirection
from refusal_tl.steer.hooks import ablation_hooks
from tests.helpers import PROMPTS


def straightforward_ce(model, prompt, completion, hooks):
    """One unpadded full forward; mean NLL of the completion's tokens."""
    p = model.chat.tokenize([prompt]).ids[0]
    full = model.chat.tokenize([prompt], [completion]).ids
    with model.bridge.hooks(fwd_hooks=hooks):
        logits = model.bridge(full)
    n = full.shape[1] - p.shape[0]
    return F.cross_entropy(logits[0, -n - 1:-1].float(), full[0, -n:]).item()


def test_batched_completion_ce_equals_one_forward_per_prompt(tiny):
    prompts, completions = PROMPTS[:4], ["yes it is", "no", "a poem about the sea and sky", "ok then"]
    r = torch.randn(tiny.d_model)
    for hooks in ([], ablation_hooks(r, tiny.n_layers)):
        got = completion_ce(tiny, prompts, completions, hooks, batch_size=3)
        want = torch.tensor([straightforward_ce(tiny, p, c, hooks) for p, c in zip(prompts, completions)])
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_proxy_is_zero_for_a_direction_that_cannot_act_and_positive_otherwise(tiny):
    d = RefusalDirection(3 * torch.randn(tiny.d_model), 2, -1, tiny.name, tiny.weights_sha)
    res = capability_proxy(tiny, PROMPTS, d, "ablate", max_new_tokens=6)
    assert res.label == LABEL and res.n_prompts >= 1
    assert res.ce_clean < res.ce_intervened and res.first_token_kl > 0  # greedy answers are the clean model's
    none = capability_proxy(tiny, PROMPTS, d, "none", max_new_tokens=6)
    assert abs(none.delta_ce) < 1e-5 and abs(none.first_token_kl) < 1e-6
    assert set(res.to_dict()) >= {"ce_clean", "ce_intervened", "delta_ce", "first_token_kl", "label"}
