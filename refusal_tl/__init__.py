"""refusal_tl: find, test and take apart the refusal mechanisms of chat LLMs.

A thin library on TransformerLens reproducing "The Geometry of Refusal in Large Language
Models" (ICML 2025). Start with :func:`load_model`, :func:`run_dim` and :func:`run_rdo`.
"""

import logging

from refusal_tl.chat import Batch, ChatFormat
from refusal_tl.config import PROFILES, DimConfig
from refusal_tl.dim import DimCandidates, eoi_activations, mean_diff
from refusal_tl.direction import RefusalDirection
from refusal_tl.errors import RefusalTLError
from refusal_tl.evaluate import EvalResult, SubstringJudge, evaluate_intervention, first_token_kl
from refusal_tl.generation import generate
from refusal_tl.hooks import ablation_hooks, addition_hooks, intervention_hooks, orthogonalize_weights
from refusal_tl.metrics import is_refusal, kl_last, refusal_rate, refusal_score
from refusal_tl.model import RefusalModel, load_model
from refusal_tl.pipeline import DimResult, run_dim
from refusal_tl.rdo import RdoConfig, train_rdo
from refusal_tl.rdo_pipeline import RdoResult, RdoRunConfig, run_rdo
from refusal_tl.selection import Selection, SelectionConfig, select_direction

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Batch", "ChatFormat", "DimCandidates", "DimConfig", "DimResult", "EvalResult", "PROFILES",
    "RdoConfig", "RdoResult", "RdoRunConfig", "run_rdo", "train_rdo",
    "RefusalDirection", "RefusalModel", "RefusalTLError", "Selection", "SelectionConfig",
    "SubstringJudge", "ablation_hooks", "addition_hooks", "eoi_activations", "evaluate_intervention",
    "first_token_kl", "generate", "intervention_hooks", "is_refusal", "kl_last", "load_model",
    "mean_diff", "orthogonalize_weights", "refusal_rate", "refusal_score", "run_dim",
    "select_direction",
]
