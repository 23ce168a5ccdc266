"""Steering a model: pure TransformerLens hooks, lean forwards, greedy generation."""

from refusal_tl.steer.generation import generate, generate_ids
from refusal_tl.steer.hooks import ablation_hooks, addition_hooks, intervention_hooks, orthogonalize_weights, row_hooks

__all__ = ["ablation_hooks", "addition_hooks", "generate", "generate_ids", "intervention_hooks",
           "orthogonalize_weights", "row_hooks"]
