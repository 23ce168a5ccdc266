"""The bundled model and its ci-profile DIM and RDO runs, shared by the integration tests.

``qwen`` loads the model as users get it (``dtype="auto"``: bf16 on a CPU or GPU with native
bf16); its runs live in the session's ``REFUSAL_TL_RUN_DIR`` (see tests/conftest.py), where the
notebooks find them later in the same session. ``qwen32`` and its runs (a folder of their own)
are float32, for the golden tests written before bf16 was the default.
"""

import os
from pathlib import Path

import pytest

from refusal_tl.dim import DimConfig, run_dim
from refusal_tl.model import load_model
from refusal_tl.rdo import RdoRunConfig, run_rdo


@pytest.fixture(scope="session")
def qwen():
    return load_model("bundled")


@pytest.fixture(scope="session")
def dim_run(qwen, tmp_path_factory):
    run_dir = Path(os.environ.get("REFUSAL_TL_RUN_DIR") or tmp_path_factory.mktemp("run"))
    return run_dim(DimConfig.from_profile("ci"), run_dir, qwen)


@pytest.fixture(scope="session")
def rdo_run(qwen, dim_run):
    return run_rdo(RdoRunConfig.from_profile("ci"), dim_run.run_dir.parent, qwen, progress=False)


@pytest.fixture(scope="session")
def qwen32():
    return load_model("bundled", dtype="float32")


# the ci profile's DIM and RDO settings when the goldens were written (commit f61d55b), spelled out so a
# later change of the ci profile leaves the golden tests as they are
GOLDEN_DIM = dict(n_train=24, n_val=16, n_val_harmless=None, batch_size=8, positions=(-1,), dtype="float32")
GOLDEN_RDO = dict(n_train=48, refusal_targets="refusing", rdo=dict(accumulation=8, epochs=1, retain_kl="code"))


@pytest.fixture(scope="session")
def dim_run32(qwen32, tmp_path_factory):
    return run_dim(DimConfig.from_profile("ci", **GOLDEN_DIM), tmp_path_factory.mktemp("run32"), qwen32)


@pytest.fixture(scope="session")
def rdo_run32(qwen32, dim_run32):
    return run_rdo(RdoRunConfig.from_profile("ci", **GOLDEN_RDO), dim_run32.run_dir.parent, qwen32, progress=False)
