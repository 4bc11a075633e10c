# oxport — the two commands a user needs are `make demo` and `make test`; each sets up .venv with
# the pinned environment and builds oxport first.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed
BUILD   := build
JOBS    ?= 2

.PHONY: demo test build ctest pytest lint clean bench fuzz coverage coverage-oxport coverage-ci core-aten large models stress

$(STAMP): requirements.txt
	python3 -m venv .venv
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $(STAMP)

# The extension, installed editable-free into .venv so that imports see the compiled module.
build: $(STAMP)
	$(PIP) install --quiet --no-build-isolation --no-deps .
	PATH=$(CURDIR)/.venv/bin:$$PATH cmake -S . -B $(BUILD)/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DOX_TESTS=OFF
	PATH=$(CURDIR)/.venv/bin:$$PATH cmake --build $(BUILD)/release -j $(JOBS) --target oxport-inspect
	install -m 755 $(BUILD)/release/oxport-inspect .venv/bin/oxport-inspect

demo: build
	$(PY) demo/demo.py

# The C core alone, under AddressSanitizer and UndefinedBehaviorSanitizer.
ctest: $(STAMP)
	PATH=$(CURDIR)/.venv/bin:$$PATH cmake -S . -B $(BUILD)/asan -G Ninja -DOX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	PATH=$(CURDIR)/.venv/bin:$$PATH cmake --build $(BUILD)/asan -j $(JOBS)
	cd $(BUILD)/asan && PATH=$(CURDIR)/.venv/bin:$$PATH ctest --output-on-failure -j $(JOBS)

pytest: build
	$(PY) -m pytest -q

test: ctest pytest

# The linters CI runs (configured in pyproject.toml and .clang-format): ruff over the Python (ruff
# format is not used), mypy --strict on the package, the _core.pyi stub against the built extension,
# no import cycles in the package, and clang-format (pinned in requirements.txt) over the C.
C_SOURCES = $(shell find src tests/c fuzz -name '*.[ch]' 2>/dev/null) $(wildcard tools/*.c)
lint: build
	$(PY) -m ruff check
	$(PY) -m mypy --strict
	$(PY) -m mypy.stubtest oxport._core
	$(PY) tools/import_cycles.py python/oxport
	.venv/bin/clang-format --dry-run --Werror $(C_SOURCES)

clean:
	rm -rf $(BUILD) .venv

# oxport and torch.onnx side by side, each run in a fresh process (15–20 minutes on 2 cores):
# rewrites bench/results.json, docs/benchmarks.md and docs/bench_depth.png. BENCH_ARGS="--quick" for a
# short run whose outputs go to bench/out/.
bench: build
	$(PY) bench/run.py $(BENCH_ARGS)

# Large models (issue 7): a ~2.5 GB Llama exported, saved and run; the Llama-2-7B architecture under
# enable_fake_mode. ~2 minutes, peak RSS ~3.2 GB; writes bench/large.json and docs/large.md.
large: build
	nice -n 19 $(PY) bench/large.py

# The reader's libFuzzer target (needs clang), run for OX_FUZZ_SECONDS (default 600).
fuzz: $(STAMP)
	PATH=$(CURDIR)/.venv/bin:$$PATH cmake -S . -B $(BUILD)/fuzz -G Ninja -DOX_FUZZ=ON -DCMAKE_C_COMPILER=clang
	PATH=$(CURDIR)/.venv/bin:$$PATH ninja -C $(BUILD)/fuzz fuzz

# OpInfo coverage, oxport and torch.onnx side by side (tools/opinfo.py): every op_db entry and dtype
# -> docs/coverage.{json,md} (hours on 2 cores); coverage-ci runs the CI subset (~5 min) into build/coverage/.
coverage: build
	$(PY) tools/opinfo.py --jobs $(JOBS) --out docs $(COVERAGE_ARGS)

# oxport again, torch.onnx's results taken from the committed docs/coverage.json (same versions
# only): ~8 min instead of ~85.
coverage-oxport: build
	cp docs/coverage.json $(BUILD)/coverage-prev.json
	$(PY) tools/opinfo.py --jobs $(JOBS) --out docs --reuse-torch-onnx $(BUILD)/coverage-prev.json $(COVERAGE_ARGS)

# The core ATen opset against oxport's lowerings -> docs/core_aten.md
core-aten: build
	$(PY) tools/core_aten.py

coverage-ci: build
	$(PY) tools/opinfo.py --subset --jobs $(JOBS) --out $(BUILD)/coverage

# The model corpus of issue 5 (tools/models.py): every torchvision classification model, the
# segmentation and three detection models, small Hugging Face models, through oxport and torch.onnx,
# each in a fresh process, static and dynamic shapes -> docs/models.md and docs/models.json (< 45 min
# on 2 cores). MODELS_ARGS="--quick" for a short run into build/models/.
models: build
	nice -n 19 $(PY) tools/models.py --jobs $(JOBS) $(MODELS_ARGS)

# Saves killed or failed by strace's fault injection (issue 15): STRESS_ARGS="--trials N" trials
# per mode (default 50), with and without external data; survived/corrupted counts. Not in CI
# (~10-25 minutes on 2 cores).
stress: build
	nice -n 19 $(PY) tools/stress_save.py $(STRESS_ARGS)
