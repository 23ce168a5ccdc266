"""Representational independence (paper §6): cosine traces, the RepInd loss and step, the iterative run."""

from refusal_tl.repind.config import RepIndConfig, RepIndRunConfig
from refusal_tl.repind.losses import repind_loss
from refusal_tl.repind.run import IndependenceResult, RepIndResult, repind_dir, run_independence, run_repind
from refusal_tl.repind.traces import CosineTrace, cosine_traces, interference, resid_traces, trace_pair
from refusal_tl.repind.train import train_repind

__all__ = ["CosineTrace", "IndependenceResult", "RepIndConfig", "RepIndResult", "RepIndRunConfig", "cosine_traces",
           "interference", "repind_dir", "repind_loss", "resid_traces", "run_independence", "run_repind", "trace_pair",
           "train_repind"]
