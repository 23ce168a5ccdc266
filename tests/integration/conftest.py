"""The bundled model and its ci-profile DIM and RDO runs, shared by the integration tests."""

import pytest

from refusal_tl.dim import DimConfig, run_dim
from refusal_tl.model import load_model
from refusal_tl.rdo import RdoRunConfig, run_rdo


@pytest.fixture(scope="session")
def qwen():
    return load_model("bundled")


@pytest.fixture(scope="session")
def dim_run(qwen, tmp_path_factory):
    return run_dim(DimConfig.from_profile("ci"), tmp_path_factory.mktemp("run"), qwen)


@pytest.fixture(scope="session")
def rdo_run(qwen, dim_run):
    return run_rdo(RdoRunConfig.from_profile("ci"), dim_run.run_dir.parent, qwen, progress=False)
