# One command runs the main job (`make demo`), one passes the tests (`make test`).
# Both create .venv, install the package with the pinned torch/torchvision pair and the
# Fashion-MNIST data on first use, and are fast no-ops for the install when nothing changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat setup.cfg requirements/constraints.txt | sha256sum | cut -c1-16)
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

.PHONY: install data demo test test-slow lint typecheck checkpoints bench-overhead clean-venv

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

demo: data
	$(BIN)/bench run --defense pgd-at --attack fgsm,pgd,cw,aa --n 200

test: data lint typecheck
	$(BIN)/python -m pytest

test-slow: data
	$(BIN)/python -m pytest -m slow

lint: install
	$(BIN)/ruff check bench defenses tests benchmarks

typecheck: install
	$(BIN)/mypy

# Retrains every committed Fashion-MNIST checkpoint (README: time on 2 cores). `standard` comes
# first: it is AFD's fine-tuning start.
DEFENSE_NAMES := standard pgd-at trades mart ancra ancra-pgd ancra-mart afd claf ascl spat
checkpoints: data
	for d in $(DEFENSE_NAMES); do $(BIN)/bench train --defense $$d --dataset fashion-mnist --quiet || exit 1; done

bench-overhead: data
	$(BIN)/python benchmarks/harness_overhead.py

clean-venv:
	rm -rf $(VENV)
