"""RDO (Algorithm 1): config, losses and targets, the step, training, selection, the run."""

from refusal_tl.rdo.config import RdoConfig, RdoRunConfig
from refusal_tl.rdo.run import RdoResult, run_rdo, training_pairs
from refusal_tl.rdo.select import RdoSelection, select_rdo
from refusal_tl.rdo.train import train_rdo

__all__ = ["RdoConfig", "RdoResult", "RdoRunConfig", "RdoSelection", "run_rdo", "select_rdo", "train_rdo",
           "training_pairs"]
