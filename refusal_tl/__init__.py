"""refusal_tl: find, test and take apart the refusal mechanisms of chat LLMs.

A thin library on TransformerLens reproducing "The Geometry of Refusal in Large Language
Models" (ICML 2025): difference-in-means directions (:func:`run_dim`), gradient-optimised ones
(:func:`run_rdo`), refusal cones (:func:`run_cone`), representationally independent directions
(:func:`run_repind`), GCG suffixes that switch a direction off (:func:`run_gcg`), and every stage in
one run directory with its report (:func:`reproduce`). Start with :func:`load_model`.

Layout, lowest floor first (a module imports only its floor or those below): ``errors`` ·
``io``, ``profiles``, ``data`` · ``model``, ``geometry``, ``optim``, ``plotting`` · ``steer``
(hooks, forwards, generation, metrics), ``export`` · ``eval`` · ``dim`` · ``rdo`` · ``cone``,
``repind`` · ``gcg`` · ``pipeline`` (reproduce, report, the notebooks' session) · ``commands``,
``cli``. The equations are in ``docs/algorithms.md``.
"""

import logging

from refusal_tl import data, plotting, profiles
from refusal_tl.cone import ConeResult, ConeRunConfig, run_cone
from refusal_tl.dim import DimCandidates, DimConfig, DimResult, Selection, SelectionConfig, run_dim, select_direction
from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.evaluate import EvalResult, evaluate_intervention, first_token_kl
from refusal_tl.eval.judges import SubstringJudge
from refusal_tl.gcg import GcgConfig, GcgResult, GcgRow, run_gcg, run_gcg_pair
from refusal_tl.geometry import RefusalCone, RefusalDirection
from refusal_tl.model import Batch, ChatFormat, RefusalModel, load_model
from refusal_tl.optim import SphereRun, TrainConfig, train_sphere
from refusal_tl.pipeline.reproduce import ReproduceConfig, ReproduceResult, reproduce
from refusal_tl.pipeline.session import Session
from refusal_tl.profiles import EvalSizes
from refusal_tl.rdo import RdoConfig, RdoResult, RdoRunConfig, run_rdo, train_rdo
from refusal_tl.repind import (
    IndependenceResult,
    RepIndConfig,
    RepIndResult,
    RepIndRunConfig,
    cosine_traces,
    run_independence,
    run_repind,
)
from refusal_tl.steer import ablation_hooks, addition_hooks, generate, intervention_hooks, orthogonalize_weights
from refusal_tl.steer.hooks import Intervention
from refusal_tl.steer.metrics import is_refusal, kl_last, refusal_rate, refusal_score

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Batch", "ChatFormat", "ConeResult", "ConeRunConfig", "DimCandidates", "DimConfig", "DimResult", "EvalResult",
    "EvalSizes", "GcgConfig", "GcgResult", "GcgRow", "IndependenceResult", "Intervention", "RdoConfig", "RdoResult",
    "RdoRunConfig", "RefusalCone", "RefusalDirection", "RefusalModel", "RefusalTLError", "RepIndConfig",
    "RepIndResult", "RepIndRunConfig", "ReproduceConfig", "ReproduceResult", "Selection", "SelectionConfig",
    "Session", "SphereRun", "SubstringJudge", "TrainConfig", "ablation_hooks", "addition_hooks", "cosine_traces",
    "data", "evaluate_intervention", "first_token_kl", "generate", "intervention_hooks", "is_refusal", "kl_last",
    "load_model", "orthogonalize_weights", "plotting", "profiles", "refusal_rate", "refusal_score", "reproduce",
    "run_cone", "run_dim", "run_gcg", "run_gcg_pair", "run_independence", "run_rdo", "run_repind",
    "select_direction", "train_rdo", "train_sphere",
]
