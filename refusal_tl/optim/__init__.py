"""Projected gradient descent on the sphere: geometry, plateau schedule, checkpoints, the loop."""

from refusal_tl.optim.checkpoint import check_checkpoints
from refusal_tl.optim.plateau import Plateau
from refusal_tl.optim.sphere import gram_schmidt, normalise_rows, project_out, tangent_rows
from refusal_tl.optim.trainer import SphereRun, TrainConfig, random_rows, train_sphere

__all__ = ["Plateau", "SphereRun", "TrainConfig", "check_checkpoints", "gram_schmidt", "normalise_rows", "project_out",
           "random_rows", "tangent_rows", "train_sphere"]
