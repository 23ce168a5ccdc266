# Set-up and entry points. `make demo` and `make test` each install first (idempotent).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build from this machine's disk; on a GPU machine use e.g. TORCH_SPEC='torch>=2.6'.
TORCH_SPEC ?= torch==2.13.0
PROFILE ?= cpu
# where `make demo` writes and where the notebooks look by default: runs/demo (cpu), runs/demo-ci, runs/demo-paper
RUN ?= runs/demo$(if $(filter-out cpu,$(PROFILE)),-$(PROFILE))

.PHONY: install demo demo-dim demo-rdo demo-cone demo-repind test unit lint figures bench bench-all bench-select \
	bench-rdo bench-cone bench-repind bench-decode bench-levers bench-reproduce bench-gcg bench-heretic docs-perf clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[bundled,dev]"
	touch $@

install: $(VENV)/.installed

# $(call evaluate,METHOD,PREFIX): the standard conditions of RUN/METHOD/direction.safetensors on the bundled test splits
EVAL = $(VENV)/bin/refusal-tl eval --direction $(RUN)/$(1)/direction.safetensors
define evaluate
	$(EVAL) --intervention ablate --prompts bundled:harmful:test --out $(RUN)/eval/$(2)harmful_ablate.json
	$(EVAL) --intervention add --prompts bundled:harmless:test --out $(RUN)/eval/$(2)harmless_add.json
	$(EVAL) --intervention ablate --prompts bundled:harmless:test --kl --out $(RUN)/eval/$(2)harmless_ablate.json
endef

demo: install
	$(VENV)/bin/refusal-tl reproduce --model bundled --out $(RUN) --profile $(PROFILE)

demo-dim: install
	$(VENV)/bin/refusal-tl dim --out $(RUN) --profile $(PROFILE)
	$(call EVAL,dim) --intervention none --prompts bundled:harmful:test --out $(RUN)/eval/harmful_baseline.json
	$(call evaluate,dim,)

demo-rdo: demo-dim
	$(VENV)/bin/refusal-tl rdo --run $(RUN) --profile $(PROFILE)
	$(call evaluate,rdo,rdo_)

demo-cone: demo-rdo
	$(VENV)/bin/refusal-tl cone --run $(RUN) --profile $(PROFILE)
	for n in 2 3; do $(VENV)/bin/refusal-tl eval --cone $(RUN)/cone-$$n/basis.safetensors --samples 64 \
		--intervention ablate --prompts bundled:harmful:test --out $(RUN)/eval/cone$${n}_harmful_ablate.json; done

demo-repind: demo-rdo
	$(VENV)/bin/refusal-tl rdo --run $(RUN) --profile $(PROFILE) --orthogonal-to $(RUN)/dim/direction.safetensors
	$(VENV)/bin/refusal-tl repind --run $(RUN) --profile $(PROFILE)
	$(VENV)/bin/refusal-tl traces --direction $(RUN)/dim/direction.safetensors --ablate $(RUN)/rdo-perp/direction.safetensors \
		--prompts bundled:harmful:val --out $(RUN)/eval/traces_dim_rdo_perp.json
	$(VENV)/bin/refusal-tl traces --direction $(RUN)/dim/direction.safetensors --ablate $(RUN)/repind-1/direction.safetensors \
		--prompts bundled:harmful:val --out $(RUN)/eval/traces_dim_repind1.json
	$(VENV)/bin/refusal-tl eval --direction $(RUN)/repind-1/direction.safetensors --direction $(RUN)/repind-2/direction.safetensors \
		--intervention ablate --prompts bundled:harmful:test --out $(RUN)/eval/repind_top2_harmful_ablate.json

test: install
	REFUSAL_TL_PROFILE=ci REFUSAL_TL_PNG=0 $(PY) -m pytest -q tests --nbmake notebooks --nbmake-timeout=1800 --durations=25

unit: install
	$(PY) -m pytest -q tests/unit

lint: install
	$(VENV)/bin/ruff check refusal_tl tests benchmarks

# Every figure of the README, at the cpu profile, from the demo's run directory (runs `make demo` first if
# needed; then each notebook reads what the demo computed). PNGs need a Chromium for kaleido (apt-get install chromium).
figures: demo
	cd notebooks && for nb in 01_dim_refusal_direction 02_rdo 03_cones 04_repind 05_gcg_suffixes 06_abliteration_search; do \
		start=$$(date +%s); REFUSAL_TL_PROFILE=cpu REFUSAL_TL_RUN_DIR=$(CURDIR)/runs/demo REFUSAL_TL_FIG_DIR=$(CURDIR)/figures \
		../$(PY) -m jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=7200 \
			--output-dir $(CURDIR)/runs/demo/notebooks $$nb.ipynb || exit 1; \
		echo "figures: $$nb.ipynb ran in $$(( $$(date +%s) - start )) s"; done

# Speed ratios written to benchmarks/results/*.json; `make docs-perf` renders docs/performance.md from them.
bench: install
	$(PY) benchmarks/bench_dtype.py
	$(PY) benchmarks/bench_foundation.py

# the benchmarks that read a cpu run directory ($(RUN), from `make demo`); bench-gcg needs nanogcg beside the project
bench-all: bench bench-select bench-rdo bench-cone bench-repind bench-decode bench-levers bench-reproduce

bench-select: install
	$(PY) benchmarks/bench_select.py --run $(RUN)

bench-rdo: install
	$(PY) benchmarks/bench_rdo.py --run $(RUN)

bench-cone: install
	$(PY) benchmarks/bench_cone.py --run $(RUN)

bench-repind: install
	$(PY) benchmarks/bench_repind.py --run $(RUN)

bench-decode: install
	$(PY) benchmarks/bench_decode.py --run $(RUN)

bench-levers: install
	$(PY) benchmarks/bench_levers.py --run $(RUN)

# right after `make demo` from an empty run directory: its stage times, then a cached rerun
bench-reproduce: install
	$(PY) benchmarks/bench_reproduce.py --run $(RUN)

# refusal-tl search beside heretic-llm 1.4.0 (its own venv under ~/.cache/refusal_tl), same budget and prompts
bench-heretic: install
	$(PY) benchmarks/bench_heretic.py --run $(RUN) --trials 32

bench-gcg: install
	$(PY) -m pip install -q --no-deps nanogcg==0.3.0 scipy
	$(PY) benchmarks/bench_gcg.py

docs-perf: install
	$(PY) benchmarks/render_performance.py

clean:
	rm -rf $(VENV) runs
