# One command runs the main job (`make demo`), one passes the tests (`make test`).
# Both create .venv, install the package with the pinned torch/torchvision pair and the
# Fashion-MNIST data on first use, and are fast no-ops for the install when nothing changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat setup.cfg requirements/constraints.txt | sha256sum | cut -c1-16)
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

.PHONY: publish install data browser slurm demo test test-quick test-durations test-slow lint typecheck check leaderboard checkpoints checkpoints-full evaluate-full claims curves bench-overhead perf clean-venv \
        gpu-campaign gpu-campaign-pack gpu-campaign-dry-run

install: $(STAMP)

$(STAMP): setup.cfg requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[test,dev]'
	$(BIN)/python -c "import torch, torchvision; assert not torch.__version__.endswith('+cpu'), torch.__version__"
	rm -f $(VENV)/.installed-*
	touch $@

# Fashion-MNIST: Debian's dataset-fashion-mnist where apt exists, else torchvision's download.
data: install
	@if [ -f $(FMNIST) ]; then echo "Fashion-MNIST: $(dir $(FMNIST))"; \
	elif command -v apt-get >/dev/null && $(SUDO) true 2>/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	else $(BIN)/bench data fetch fashion-mnist; fi

# Debian's Chromium, for the test that opens `bench leaderboard --html` in a real headless browser
# (CI fails that test without it; elsewhere it is skipped).
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then echo "browser: $$(command -v chromium || command -v chromium-browser)"; \
	elif command -v apt-get >/dev/null && $(SUDO) true 2>/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	else echo "browser: no chromium and no apt: the HTML leaderboard's browser test will be skipped"; fi

# Debian's slurm-wlm and munge, for the tests that run `bench sweep --executor slurm` against a real
# single-node cluster they start under a temp folder (tests/slurm.py; CI fails them without it,
# elsewhere they are skipped). Installing starts no daemon outside a systemd machine.
slurm:
	@if command -v slurmctld >/dev/null || [ -x /usr/sbin/slurmctld ]; then echo "slurm: $$(/usr/sbin/slurmctld -V 2>/dev/null || slurmctld -V)"; \
	elif command -v apt-get >/dev/null && $(SUDO) true 2>/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq slurm-wlm munge >/dev/null; \
	else echo "slurm: no slurm-wlm and no apt: the SLURM sweep tests will be skipped"; fi

# The demo's record and table go to demo/ (git-ignored): the committed results/ stay as they are.
demo: data
	$(BIN)/bench run --defense pgd-at --attack fgsm,pgd,cw,aa --n 200 --results-dir demo/runs

test: data lint typecheck browser slurm
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory check

# The CI regression gate: every committed checkpoint against results/baselines/ (README: duration).
check: data
	$(BIN)/bench check --quiet

leaderboard: install
	$(BIN)/bench leaderboard

test-slow: data
	$(BIN)/python -m pytest -m slow

# The inner loop (under 3 minutes on 2 cores): the default tier minus the subprocess and browser
# suites and every test tests/durations.json measured above 1.5 s (tests/tiers.py).
test-quick: data
	$(BIN)/python -m pytest --quick -q

# Re-measure the default tier, test by test, into tests/durations.json (what --quick reads).
test-durations: data browser slurm
	BENCH_DURATIONS_OUT=tests/durations.json $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check bench defenses tests benchmarks examples
	$(BIN)/lint-imports --no-cache

typecheck: install
	$(BIN)/mypy

# Retrains every published defense's committed Fashion-MNIST checkpoint (docs/defenses.md: time on
# 2 cores), fine-tuning starts first (`standard` before AFD).
checkpoints: data
	for d in $$($(BIN)/python -c "from defenses import published; print(*published('fashion-mnist'))"); do \
	  $(BIN)/bench train --defense $$d --dataset fashion-mnist --overwrite --quiet || exit 1; done

# Every published defense at the full training budget (checkpoints/fashion-mnist-full/, ~18 h on 2
# cores): two queues, one thread each, exact resume after every epoch. Rerun to continue after a stop.
checkpoints-full: data
	$(BIN)/python benchmarks/train_full.py

# Every finished full-budget checkpoint evaluated as a published defense is (1000-point board row,
# official AutoAttack on 200, worst-case ε-curve with the adaptive attacks, audit), skipping what is
# recorded; one thread. Rerun to continue after a stop. `make claims` afterwards.
evaluate-full: data
	$(BIN)/python benchmarks/evaluate_full.py

# docs/claims.md from the committed records (each paper's claim against its baseline, by a fixed rule).
claims: install
	$(BIN)/python -m bench.reporting.claims

# Everything a published defense needs (CONTRIBUTING: "Adding a defense"), in order: its committed
# checkpoint, the 1000-point records with its adaptive attacks, the official AutoAttack on 200, its
# ε-curve, the audit, the board and its gate baseline. Hours on 2 CPU cores: make prints each step;
# one that was interrupted continues with its own command plus --resume, then the ones after it.
publish: data
	@test -n "$(DEFENSE)" || { echo "usage: make publish DEFENSE=NAME (a registered defense)"; exit 2; }
	$(BIN)/bench train --defense $(DEFENSE) --dataset fashion-mnist --quiet
	$(BIN)/bench run --defense $(DEFENSE) --attack fgsm,pgd,cw,aa-fast,adaptive --n 1000 --quiet
	$(BIN)/bench run --defense $(DEFENSE) --attack aa --n 200 --quiet
	$(BIN)/bench run --defense $(DEFENSE) --attack fgsm,pgd --eps-sweep $(EPS_SWEEP) --n 500 --quiet
	$(BIN)/bench audit --defense $(DEFENSE) --quiet
	$(BIN)/bench leaderboard
	$(BIN)/bench check --defense $(DEFENSE) --update-baseline --reason "published $(DEFENSE)" --quiet

# The ε curves and attack-strength curves behind the leaderboard's plots (README: duration);
# incremental: what is recorded already is skipped.
EPS_SWEEP := 0.02,0.05,0.1,0.15,0.2,0.3,0.5
STRENGTH  := pgd:steps=1,pgd:steps=2,pgd:steps=5,pgd:steps=10,pgd,pgd:steps=50,pgd:steps=100,pgd:restarts=3,pgd:restarts=10
curves: data
	$(BIN)/bench sweep --attack fgsm,pgd --eps-sweep $(EPS_SWEEP) --n 500 --quiet
	$(BIN)/bench sweep --attack $(STRENGTH) --n 500 --quiet

bench-overhead: data
	$(BIN)/python benchmarks/harness_overhead.py

# results/perf.md: our attacks vs torchattacks / pyautoattack, aa-fast vs aa on every committed
# checkpoint, cascade, torchrun shards, peak RSS (README: duration). Run it on an otherwise idle machine.
perf: data
	$(BIN)/python benchmarks/perf.py

# The GPU campaign (README "Running on a GPU"). `gpu-campaign-pack` puts what a machine without network
# needs into .campaign/ (git-ignored, ~31 MB): the official AutoAttack's code and the Fashion-MNIST files.
# `gpu-campaign` runs there with that machine's own python3 and torch; OUT= names the output folder.
CAMPAIGN_OUT ?= $(or $(OUT),campaign-out)
gpu-campaign-pack: data
	rm -rf .campaign && mkdir -p .campaign/site .campaign/data
	$(BIN)/python -c "import pyautoattack, pathlib, shutil; src = pathlib.Path(pyautoattack.__file__).parent; \
	  shutil.copytree(src, '.campaign/site/pyautoattack', ignore=shutil.ignore_patterns('examples', '__pycache__'))"
	cp $(dir $(FMNIST))*-ubyte.gz .campaign/data/

gpu-campaign:
	$(PYTHON) benchmarks/gpu_campaign.py --out $(CAMPAIGN_OUT) $(CAMPAIGN_ARGS)

# The whole campaign on CPU at toy sizes (the default test suite runs it too).
gpu-campaign-dry-run: data
	$(BIN)/python benchmarks/gpu_campaign.py --dry-run --workers 2 --out $(CAMPAIGN_OUT)-dry $(CAMPAIGN_ARGS)

clean-venv:
	rm -rf $(VENV)
