"""The README's quick tour, run exactly as written: the bundled model, the ci profile, the session's
run directory (``REFUSAL_TL_RUN_DIR``), where the DIM and RDO fixtures already are; its cones,
RepInd directions and GCG suffixes stay there for the notebooks later in the session."""

import os
import re
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[2] / "README.md"


def tour() -> str:
    section = README.read_text().split("## Quick tour", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_tour_runs_as_written(dim_run, rdo_run, capsys):
    names: dict = {}
    exec(compile(tour(), "README.md (quick tour)", "exec"), names)
    out = capsys.readouterr().out
    torch.testing.assert_close(names["d"].vector, dim_run.direction.vector)  # the stage was reused, not recomputed
    assert names["rdo"].cosine_to_dim == pytest.approx(rdo_run.cosine_to_dim)
    assert "cosine(DIM, RDO)" in out and "no intervention" in out
    assert [r["method"] for r in names["methods"]["rows"]] == ["no intervention", "DIM", "RDO"]
    assert set(names["cones"]) == {2} and len(names["ind"].repind.directions) == 2
    assert set(names["gcg"].mean_cos_drop()) == {"w_aux = 10", "w_aux = 0 (plain GCG)"}
    assert (Path(os.environ["REFUSAL_TL_RUN_DIR"]) / "figures" / "fig9.html").is_file()
