"""refusal_tl: find, test and take apart the refusal mechanisms of chat LLMs.

A thin library on TransformerLens reproducing "The Geometry of Refusal in Large Language
Models" (ICML 2025). Start with :func:`load_model`, :func:`run_dim`, :func:`run_rdo` and
:func:`run_cone`.

Layout: ``model`` (loading, chat format) · ``data`` (prompt sets) · ``steer`` (hooks,
forwards, generation) · ``geometry`` (directions) · ``optim`` (the sphere trainer) ·
``dim`` · ``rdo`` · ``cone`` · ``eval`` (metrics, judges, experiments) · ``plotting`` · ``profiles``.
The equations are in ``docs/algorithms.md``.
"""

import logging

from refusal_tl import data, plotting, profiles
from refusal_tl.cone import ConeResult, ConeRunConfig, run_cone
from refusal_tl.dim import DimCandidates, DimConfig, DimResult, Selection, SelectionConfig, run_dim, select_direction
from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.evaluate import EvalResult, evaluate_intervention, first_token_kl
from refusal_tl.eval.judges import SubstringJudge
from refusal_tl.eval.metrics import is_refusal, kl_last, refusal_rate, refusal_score
from refusal_tl.geometry import RefusalCone, RefusalDirection
from refusal_tl.model import Batch, ChatFormat, RefusalModel, load_model
from refusal_tl.optim import SphereRun, TrainConfig, train_sphere
from refusal_tl.rdo import RdoConfig, RdoResult, RdoRunConfig, run_rdo, train_rdo
from refusal_tl.repind import RepIndConfig, RepIndResult, RepIndRunConfig, cosine_traces, run_repind
from refusal_tl.steer import ablation_hooks, addition_hooks, generate, intervention_hooks, orthogonalize_weights

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Batch", "ChatFormat", "ConeResult", "ConeRunConfig", "DimCandidates", "DimConfig", "DimResult", "EvalResult",
    "RdoConfig", "RdoResult", "RdoRunConfig", "RefusalCone", "RefusalDirection", "RefusalModel", "RefusalTLError",
    "RepIndConfig", "RepIndResult", "RepIndRunConfig", "Selection", "SelectionConfig", "SphereRun", "SubstringJudge",
    "TrainConfig", "ablation_hooks", "addition_hooks", "cosine_traces", "data", "evaluate_intervention",
    "first_token_kl", "generate", "intervention_hooks", "is_refusal", "kl_last", "load_model",
    "orthogonalize_weights", "plotting", "profiles", "refusal_rate", "refusal_score", "run_cone", "run_dim",
    "run_rdo", "run_repind", "select_direction", "train_rdo", "train_sphere",
]
