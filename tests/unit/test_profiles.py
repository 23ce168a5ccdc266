"""The one profile table and the configs built from it: every bad option fails at construction."""

import pytest

from refusal_tl import profiles
from refusal_tl.cone import ConeConfig, ConeRunConfig
from refusal_tl.dim import DimConfig, SelectionConfig, run_dim
from refusal_tl.errors import RefusalTLError
from refusal_tl.gcg import GcgConfig
from refusal_tl.profiles import EvalSizes
from refusal_tl.rdo import RdoConfig, RdoRunConfig
from refusal_tl.repind import RepIndConfig, RepIndRunConfig


def test_every_profile_has_every_stage_and_builds_valid_configs():
    for name in profiles.NAMES:
        assert set(profiles.PROFILES[name]) >= {"dim", "rdo", "cone", "repind", "eval"}
        rep = RepIndRunConfig.from_profile(name)
        ret = 1.0 if name == "paper" else 0.1  # Table 3 in the paper profile, the official run's 0.1 elsewhere
        assert rep.profile == name and rep.repind.weights == {**profiles.RDO_WEIGHTS, "ret": ret}
        assert rep.repind.loss_weights["ind"] == 200.0 and rep.repind.epochs == (1 if name == "ci" else 2)
        dim, rdo, cone = DimConfig.from_profile(name), RdoRunConfig.from_profile(name), ConeRunConfig.from_profile(name)
        assert dim.profile == rdo.profile == cone.profile == name
        assert cone.cone.weights == profiles.RDO_WEIGHTS
        assert cone.dims == {"ci": (2,), "paper": (2, 3, 4, 5)}.get(name, (2, 3))
        assert rdo.rdo.weights == profiles.RDO_WEIGHTS
        assert name in profiles.describe(name)


def test_profile_values_reach_the_configs():
    ci = RdoRunConfig.from_profile("ci")
    assert (ci.n_train, ci.rdo.accumulation, ci.rdo.epochs, ci.rdo.retain_kl, ci.refusal_targets) == \
        (48, 8, 1, "code", "refusing")
    paper = RdoRunConfig.from_profile("paper")
    assert paper.rdo.retain_kl == "paper" and paper.harmful_train == "hub:salad:train"
    assert DimConfig.from_profile("paper").harmful_val == "hub:salad:val"
    assert (DimConfig.from_profile("ci").positions, DimConfig.from_profile("cpu").positions) == ((-1,), None)
    assert DimConfig.from_profile("ci", positions="all").positions is None  # the CLI's --positions all
    assert DimConfig.from_profile("cpu", positions="-2,-1").positions == (-2, -1)
    override = RdoRunConfig.from_profile("cpu", rdo=dict(epochs=2, weights={"ret": 0.5}), n_train=10)
    assert override.rdo.epochs == 2 and override.rdo.weights == {"abl": 1.0, "add": 0.2, "ret": 0.5}
    assert override.n_train == 10 and override.rdo.accumulation == 16
    cpu, paper = ConeRunConfig.from_profile("cpu"), ConeRunConfig.from_profile("paper")
    assert (cpu.init, cpu.cone.n_samples, cpu.cone.accumulation, cpu.max_steps) == ("rdo", 1, 8, 12)
    assert (paper.init, paper.cone.n_samples, paper.filter_samples, paper.harmful_train) == \
        ("random", 16, 64, "hub:salad:train")
    assert ConeRunConfig.from_profile("ci", cone=dict(n_samples=3), dims=(4, 2, 3)).cone.n_samples == 3
    assert ConeRunConfig(dims=(3, 2, 3)).dims == (2, 3)
    rep = RepIndRunConfig.from_profile("paper", repind=dict(ind_weight=50.0), k=3)
    assert (rep.k, rep.candidates, rep.repind.ind_weight, rep.harmful_train) == (3, 5, 50.0, "hub:salad:train")
    assert RepIndConfig().ind_layers(24) == list(range(21))  # 0 … ⌊0.9·L⌋ − 1


@pytest.mark.parametrize("build,match", [
    (lambda: DimConfig.from_profile("laptop"), "unknown profile 'laptop'"),
    (lambda: DimConfig(profile="gpu"), "unknown profile 'gpu'"),
    (lambda: DimConfig(n_train=0), "n_train must be a whole number ≥ 1"),
    (lambda: DimConfig(n_val=-3), "n_val must be"),
    (lambda: DimConfig(n_val_harmless=0), "n_val_harmless must be"),
    (lambda: DimConfig(batch_size=0), "batch_size must be"),
    (lambda: DimConfig(positions=(0,)), "positions must be 'all' or negative token offsets"),
    (lambda: DimConfig(positions=()), "positions must be 'all' or negative token offsets"),
    (lambda: DimConfig(positions="last"), "positions must be 'all' or negative token offsets"),
    (lambda: DimConfig(dtype="fp8"), "unknown dtype 'fp8'"),
    (lambda: DimConfig(device="gpu0"), "unknown device 'gpu0'"),
    (lambda: SelectionConfig(prune_layer_frac=1.5), "prune_layer_frac must be in"),
    (lambda: SelectionConfig(batch_size=0), "batch_size must be"),
    (lambda: RdoConfig(retain_kl="papr"), "unknown retain_kl 'papr'"),
    (lambda: RdoConfig(weights={"abl": 1.0, "addd": 0.2}), "RDO weights must be"),
    (lambda: RdoConfig(weights={"ret": -1.0}), "RDO weights must be"),
    (lambda: RdoConfig(micro_batch=0), "micro_batch must be"),
    (lambda: RdoConfig(lr=-1.0), "lr must be > 0"),
    (lambda: RdoRunConfig(selection="last-20"), "unknown selection 'last-20'"),
    (lambda: RdoRunConfig(refusal_targets="some"), "unknown refusal_targets 'some'"),
    (lambda: RdoRunConfig(profile="gpu"), "unknown profile 'gpu'"),
    (lambda: RdoRunConfig(restarts=0), "restarts must be"),
    (lambda: RdoRunConfig(batch_size=0), "batch_size must be"),
    (lambda: RdoRunConfig(n_train=0), "n_train must be"),
    (lambda: RdoRunConfig(max_steps=0), "max_steps must be"),
    (lambda: RdoRunConfig(layer=-1), "layer must be ≥ 0"),
    (lambda: ConeConfig(sampling="dirichlet"), "unknown sampling 'dirichlet'"),
    (lambda: ConeConfig(n_samples=-1), "n_samples must be ≥ 0"),
    (lambda: ConeRunConfig(dims=(0, 2)), "cone dimensions must be integers ≥ 1"),
    (lambda: ConeRunConfig(init="dim"), "unknown init 'dim'"),
    (lambda: ConeRunConfig(selection="best"), "unknown selection 'best'"),
    (lambda: ConeRunConfig(filter_samples=0), "filter_samples must be"),
    (lambda: RepIndConfig(ind_weight=-1.0), "ind_weight"),
    (lambda: RepIndConfig(layer_fraction=0.0), "layer_fraction must be in"),
    (lambda: RepIndRunConfig(k=0), "k must be"),
    (lambda: RepIndRunConfig(candidates=0), "candidates must be"),
    (lambda: RepIndRunConfig(refusal_targets="few"), "unknown refusal_targets 'few'"),
])
def test_bad_options_fail_at_construction_in_one_line(build, match):
    with pytest.raises(RefusalTLError, match=match) as err:
        build()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("config", [DimConfig, RdoRunConfig, ConeRunConfig, RepIndRunConfig, GcgConfig])
def test_a_config_built_without_arguments_is_the_profile_it_names(config):
    default = config()
    assert default.profile == "cpu" and default == config.from_profile("cpu")


def test_eval_sizes_are_validated_and_unknown_keys_are_errors():
    assert EvalSizes.of("cpu").n_eval == profiles.profile("cpu", "eval")["n_eval"]
    assert EvalSizes.of("ci", bon_temperatures=[0.5]).bon_temperatures == (0.5,)
    with pytest.raises(RefusalTLError, match="unknown evaluation size"):
        EvalSizes.of("cpu", n_evals=3)
    with pytest.raises(RefusalTLError, match="n_eval must be a positive integer"):
        EvalSizes.of("cpu", n_eval=0)


def test_the_cli_choices_are_the_configs_literals():
    from refusal_tl.cli import build_parser
    from refusal_tl.errors import literal_fields

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    option = lambda cmd, flag: next(a for a in sub[cmd]._actions if flag in a.option_strings).choices
    assert option("rdo", "--retain-kl") == list(literal_fields(RdoConfig)["retain_kl"])
    assert option("cone", "--init") == list(literal_fields(ConeRunConfig)["init"])
    assert option("rdo", "--profile") == list(profiles.NAMES) == ["ci", "cpu", "paper", "official"]
    assert "bfloat16" in option("dim", "--dtype") and option("eval", "--intervention") == \
        ["none", "ablate", "add", "subtract"]


def test_a_config_naming_another_model_is_a_one_line_error(tiny, tmp_path):
    with pytest.raises(RefusalTLError, match="names model 'bundled' but the model passed in is 'tiny-qwen'"):
        run_dim(DimConfig.from_profile("ci"), tmp_path, tiny)
    assert not (tmp_path / "dim").exists()  # nothing written


@pytest.mark.parametrize("difference", profiles.DIFFERENCES, ids=lambda d: f"{d[0]}.{d[1]}")
def test_paper_and_official_carry_their_stated_values(difference):
    stage, key, paper, official, source = difference
    assert profiles.profile("paper", stage)[key] == paper
    assert profiles.profile("official", stage)[key] == official
    assert paper != official and source
    # and the configs built from the profiles carry them
    built = {"rdo": RdoRunConfig, "cone": ConeRunConfig, "repind": RepIndRunConfig}.get(stage)
    if built is not None:
        for name, value in (("paper", paper), ("official", official)):
            cfg = built.from_profile(name)
            got = getattr(cfg, key) if hasattr(cfg, key) else getattr(getattr(cfg, stage), key)
            want = {**profiles.RDO_WEIGHTS, **value} if key == "weights" else value
            assert got == want, (name, stage, key)
    else:
        assert getattr(EvalSizes.of("paper"), key) == paper and getattr(EvalSizes.of("official"), key) == official


def test_official_is_paper_except_the_listed_differences():
    listed = {(s, k) for s, k, *_ in profiles.DIFFERENCES}
    for stage, settings in profiles.PROFILES["paper"].items():
        for key, value in settings.items():
            if (stage, key) not in listed:
                assert profiles.PROFILES["official"][stage][key] == value
