"""Refusal cones (Algorithm 2): config, the cone step, training, selection, the run."""

from refusal_tl.cone.config import ConeConfig, ConeRunConfig
from refusal_tl.cone.run import ConeResult, cone_dir, run_cone
from refusal_tl.cone.select import ConeSelection, select_cone
from refusal_tl.cone.train import grow, train_cone

__all__ = ["ConeConfig", "ConeResult", "ConeRunConfig", "ConeSelection", "cone_dir", "grow", "run_cone",
           "select_cone", "train_cone"]
