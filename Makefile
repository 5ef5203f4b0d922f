# Thin front door over scripts/*.sh; the scripts do the work and can be run directly.
#   make help                      list the targets
#   make test ARGS='-L unit'       arguments after ARGS go to ctest (test) or talkserve (run)
#   make build BUILD_DIR=build-x   another build tree (also: TALKSERVE_BUILD_DIR in the env)

BUILD_DIR ?= $(or $(TALKSERVE_BUILD_DIR),build)
BUILD_DIR := $(BUILD_DIR)
ARGS ?=
CLANG_FORMAT ?= clang-format

# The scripts read the build tree from the environment; make it absolute and pass it on.
export TALKSERVE_BUILD_DIR := $(abspath $(BUILD_DIR))

.DEFAULT_GOAL := help
.PHONY: help setup build models run test bench format format-check clean distclean

help: ## list the targets
	@echo "talkserve make targets:"
	@grep -E '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | \
	  sed -E 's/^([a-z-]+):.*## (.*)/\1|\2/' | awk -F'|' '{ printf "  %-14s %s\n", $$1, $$2 }'
	@echo "variables: BUILD_DIR=$(BUILD_DIR)  ARGS='...' (passed to ctest / talkserve)"

setup: ## install the missing Debian packages (apt; root or sudo)
	scripts/setup.sh --deps-only

build: ## install missing packages, configure and build everything (Release, Ninja)
	scripts/setup.sh

models: ## fetch and verify the default models into models/ (TALKSERVE_MODEL_MIRROR honoured)
	scripts/fetch-models.sh

run: ## build the server, fetch models, run it on 127.0.0.1:8080 (ARGS go to talkserve)
	scripts/run.sh $(ARGS)

test: ## build everything, fetch models, run all tests (ARGS go to ctest)
	scripts/test.sh $(ARGS)

bench: build models ## build, fetch models, run every benchmark binary under <build>/bench
	@set -e; \
	benches=$$(find "$(TALKSERVE_BUILD_DIR)/bench" -type f -name 'bench_*' -perm -u+x | sort); \
	if [ -z "$$benches" ]; then echo "bench: no benchmark binaries in $(TALKSERVE_BUILD_DIR)/bench"; exit 1; fi; \
	for b in $$benches; do \
	  echo "bench: === $$(basename $$b)"; \
	  TALKSERVE_SOURCE_DIR="$(CURDIR)" TALKSERVE_MODELS_DIR="$(CURDIR)/models" "$$b"; \
	done

format: ## clang-format the C++ sources in place (if clang-format is installed)
	@if command -v $(CLANG_FORMAT) >/dev/null 2>&1; then \
	  git ls-files -- 'src/*' 'include/*' 'tests/*' 'bench/*' | grep -E '\.(cpp|hpp|h|cc)$$' | \
	    xargs -r $(CLANG_FORMAT) -i --style=file; \
	  echo "format: done"; \
	else echo "format: $(CLANG_FORMAT) not found (apt-get install clang-format); skipped"; fi

format-check: ## report files clang-format would change, without changing them
	@if command -v $(CLANG_FORMAT) >/dev/null 2>&1; then \
	  git ls-files -- 'src/*' 'include/*' 'tests/*' 'bench/*' | grep -E '\.(cpp|hpp|h|cc)$$' | \
	    xargs -r $(CLANG_FORMAT) --dry-run -Werror --style=file; \
	else echo "format-check: $(CLANG_FORMAT) not found (apt-get install clang-format); skipped"; fi

clean: ## remove build outputs (keeps the configured tree and the models)
	@if [ -f "$(TALKSERVE_BUILD_DIR)/CMakeCache.txt" ]; then \
	  cmake --build "$(TALKSERVE_BUILD_DIR)" --target clean; \
	else echo "clean: nothing to clean in $(TALKSERVE_BUILD_DIR)"; fi

distclean: ## delete the build tree itself
	rm -rf -- "$(TALKSERVE_BUILD_DIR)"
