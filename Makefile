# Top-level entry points.  CMake does the real work, out of tree in build/.
#   make run      bootstrap (run group), build, start the system (see README)
#   make run-cluster  etcd + 3 thothd "hosts" federated on this machine, an echo
#                 service on each (docs/FEDERATION.md); needs etcd (test group)
#   make test     bootstrap, build with -Werror (plain and ASan+UBSan), run every test,
#                 then the concurrency tests (label tsan) under ThreadSanitizer;
#                 each sanitizer build runs beside the test stage before it
#   make tsan     only the ThreadSanitizer build and its tests (label tsan)
#   make bench    build optimised and run every benchmark under bench/
#   make fuzz     build the libFuzzer targets with clang and run each for a bounded time
#   make soak     the reliability suite's long variants, SOAK_SECONDS per scenario
#   make numa-vm  SCALE-1 on two NUMA nodes: a 2-node QEMU guest (KVM where /dev/kvm can run
#                 it, else TCG: ~30 s here) runs the placement test and the cross-node
#                 benchmark (scripts/qemu-numa.sh; fetches Debian's kernel package once)
#   make install  build optimised (no tests) and install under PREFIX (default
#                 /usr/local), staged under DESTDIR if set (docs/INSTALL.md)
#   make deb      Debian packages libthoth0, libthoth-dev, thoth-tools in build/deb
#                 (dpkg-buildpackage -b -us -uc, then lintian)
#
# scripts/bootstrap.sh installs the Debian packages each needs, read from
# debian/control's Build-Depends: `make run` and `make install` only what
# building needs, `make test` also what the tests need, `make bench` and
# `make fuzz` what the benchmarks and fuzzers need.

BUILD      ?= build/default
ASAN_BUILD ?= build/asan
TSAN_BUILD ?= build/tsan
# The concurrency tests the ThreadSanitizer build makes and runs (label tsan):
# the lock-free resolve table and the per-thread counters (docs/SCALE.md);
# a governed service's loop thread and its watcher (docs/PM.md); the
# dashboard's /trace.json view copied by a worker (docs/DASHBOARD.md).
TSAN_TARGETS = test_rtable test_pcounter test_trace_collector test_serve_counters thothd \
               test_thothd_deferred test_thothd_live_drain governed_service test_pm_governed \
               test_dashboard_export
FUZZ_BUILD ?= build/fuzz
INSTALL_BUILD ?= build/install
DEB_OUT    ?= build/deb
JOBS       ?= $(shell nproc)
# ctest's -j for the plain stage: twice the CPUs.  Most of its tests wait
# (thothd and service start-ups, timers, kill/restart scenarios): at
# -j$(JOBS) it kept its CPUs under half busy (docs/TESTING.md, "Test stage
# (stop 40)").  The tests a neighbour would falsify are RUN_SERIAL (alone)
# or thoth_timing_sensitive (tests/CMakeLists.txt).  The ASan stage too
# since stop 41 (its tests' hang guards and the live-drain count fixed for
# it there, then three clean -j4 runs at load medians 2-8: 274 s at load 2
# against stop 40's 373 s at -j2; docs/TESTING.md "Test stage (stop 41)";
# at load 11-14 its tests needed longer hang guards: thoth_add_test gives
# them 3x there); the TSan stage stays serial.
CTEST_JOBS ?= $(shell echo $$(( $(JOBS) * 2 )))
PREFIX     ?= /usr/local
DESTDIR    ?=
FUZZ_SECONDS ?= 20
SOAK_SECONDS ?= 60

CMAKE_FLAGS = -DTHOTH_WERROR=ON
# The plain build (make test, make run) at -O3 like make bench's Release
# build, with debug info: GCC's -O3 inlining finds maybe-uninitialized
# paths -O2 does not, and -Werror turned each into a broken make bench
# that no test build caught (twice).  Same flags otherwise as
# RelWithDebInfo (-g -DNDEBUG).
O3_DEBUG = -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O3 -g -DNDEBUG"
# A new build folder of the rules that use CMAKE_GEN (make test's three,
# run, run-cluster, numa-vm) is generated for Ninja where ninja is installed
# (ninja-build, bootstrap's run group): with CMake's Makefiles the same
# cold TSan build took 93 CPU-seconds against Ninja's 52, over half of the
# 93 outside the compiler and linker (recursive makes, per-target
# `cmake -E` dependency scans and progress; docs/TESTING.md "Build time").
# A folder already configured keeps its generator (CMake ignores
# CMAKE_GENERATOR there), and a CMAKE_GENERATOR of the caller's wins.
CMAKE_GEN = if [ -z "$${CMAKE_GENERATOR:-}" ] && command -v ninja >/dev/null; then export CMAKE_GENERATOR=Ninja; fi;
# No "Entering directory" lines from the makes CMake runs below us.
MAKEFLAGS += --no-print-directory

.PHONY: all bootstrap build asan tsan tsan-build test run run-cluster bench fuzz soak numa-vm install deb clean

all: build

# The package group for bootstrap and whether build/default has the tests:
# set per goal (target-specific, so `build` and `asan` inherit them).
BOOTSTRAP_GROUP = test
TESTS = ON
run install: BOOTSTRAP_GROUP = run
run run-cluster: TESTS = OFF
run-cluster: BOOTSTRAP_GROUP = test
bench fuzz: BOOTSTRAP_GROUP = bench

bootstrap:
	@scripts/bootstrap.sh $(BOOTSTRAP_GROUP)

build: bootstrap
	@$(CMAKE_GEN) cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTHOTH_TESTS=$(TESTS) \
	       -DTHOTH_BENCH=$(TESTS) $(O3_DEBUG) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

asan: bootstrap
	@$(CMAKE_GEN) cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTHOTH_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

# The Debian package build (test_debian_package_build, label deb: 2-4 min)
# runs in CI (CI=true) or with `make test DEB=1`; a lighter packaging test
# always runs.
CTEST_DEB = $(if $(or $(CI),$(DEB)),,-LE deb)

# Only the targets labelled tsan: a whole-tree TSan build would double the
# build time for tests that share no memory between threads.
tsan-build: bootstrap
	@$(CMAKE_GEN) cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTHOTH_TSAN=ON -DTHOTH_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(TSAN_BUILD) -j$(JOBS) --target $(TSAN_TARGETS)

tsan: tsan-build
	@echo "== concurrency tests (ThreadSanitizer) =="
	@TSAN_OPTIONS=halt_on_error=1 ctest --test-dir $(TSAN_BUILD) --output-on-failure -L tsan

# Each stage runs while thothd's default dashboard port (127.0.0.1:9180) is
# held (tests/common/hold_default_ports.py): a test whose thothd still
# takes the default, and so had a dashboard or not depending on which other
# test held 9180 at that moment, fails every time instead of now and then.
# The python3 of the stage guards below: Debian's where there is one, as
# tests/CMakeLists.txt finds for the tests (THOTH_PYTHON3_EXE): a version
# manager's shim first on PATH (pyenv) costs 1.5-3.5 s a start here, and
# each stage starts two guards one after the other before its first test.
THOTH_PYTHON3 ?= $(firstword $(wildcard /usr/bin/python3) python3)
HOLD_DEFAULTS = $(THOTH_PYTHON3) tests/common/hold_default_ports.py --
# ... and with TMPDIR at a fresh folder of the stage's own: afterwards a
# file left there or a process the stage started that still runs fails the
# stage, named (tests/common/clean_stage.py; docs/TESTING.md "Leftovers guard");
# --skips: the stage ends with the cases and tests it skipped, and why
# (docs/TESTING.md "Honest stages (stop 43)").
CLEAN_STAGE = $(THOTH_PYTHON3) tests/common/clean_stage.py
# ... which reads ctest's JUnit file, every test's whole output in it.
JUNIT = --output-junit Testing/Temporary/LastStage.xml --test-output-size-passed 16777216 \
        --test-output-size-failed 16777216

# The sanitizer builds run beside the stage before theirs, at SCHED_IDLE
# (scripts/beside.sh): the ASan+UBSan build beside the plain tests, the
# TSan build beside the ASan+UBSan tests.  Those stages keep 2 CPUs under
# half busy (their tests mostly wait), so the builds take the idle CPU
# instead of ~3 minutes of their own before the tests; a test thread that
# wakes preempts them at once (docs/TESTING.md "Test stage (stop 42)").
# Their output goes to a log, shown when they fail; each -Werror as before.
# -o bootstrap: `build` ran it already.  Through a variable, not a literal
# $(MAKE) in the recipe, so that `make -n test` prints the line instead of
# running it (make runs a line naming $(MAKE) even under -n).
BESIDE = scripts/beside.sh
SAN_MAKE = $(MAKE) -o bootstrap

test: build
	@echo "== tests (RelWithDebInfo); the ASan+UBSan build beside them (log: $(ASAN_BUILD).log) =="
	@$(BESIDE) $(ASAN_BUILD).log $(SAN_MAKE) asan -- \
	  $(HOLD_DEFAULTS) $(CLEAN_STAGE) --skips $(BUILD) -- ctest --test-dir $(BUILD) --output-on-failure $(JUNIT) -j$(CTEST_JOBS) $(CTEST_DEB)
	@echo "== tests (ASan+UBSan); the TSan build beside them (log: $(TSAN_BUILD).log) =="
	@$(BESIDE) $(TSAN_BUILD).log $(SAN_MAKE) tsan-build -- \
	  $(HOLD_DEFAULTS) $(CLEAN_STAGE) --skips $(ASAN_BUILD) -- ctest --test-dir $(ASAN_BUILD) --output-on-failure $(JUNIT) -j$(CTEST_JOBS)
	@echo "== concurrency tests (ThreadSanitizer) =="
	@TSAN_OPTIONS=halt_on_error=1 $(HOLD_DEFAULTS) $(CLEAN_STAGE) --skips $(TSAN_BUILD) -- ctest --test-dir $(TSAN_BUILD) --output-on-failure $(JUNIT) -L tsan

# Quiet: the build's output goes to a log (shown if it fails), then the demo.
run: bootstrap
	@$(CMAKE_GEN) cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTHOTH_TESTS=$(TESTS) \
	       -DTHOTH_BENCH=$(TESTS) $(O3_DEBUG) $(CMAKE_FLAGS) >/dev/null
	@echo "building (log: $(BUILD)/build.log) ..."
	@cmake --build $(BUILD) -j$(JOBS) >$(BUILD)/build.log 2>&1 || \
	  { tail -40 $(BUILD)/build.log; echo "build failed: $(BUILD)/build.log"; exit 1; }
	@scripts/run.sh $(BUILD)

run-cluster: bootstrap
	@$(CMAKE_GEN) cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTHOTH_TESTS=$(TESTS) \
	       -DTHOTH_BENCH=$(TESTS) $(CMAKE_FLAGS) >/dev/null
	@echo "building (log: $(BUILD)/build.log) ..."
	@cmake --build $(BUILD) -j$(JOBS) --target thothd thothctl echo >$(BUILD)/build.log 2>&1 || \
	  { tail -40 $(BUILD)/build.log; echo "build failed: $(BUILD)/build.log"; exit 1; }
	@scripts/run-cluster.sh $(BUILD)

bench: bootstrap
	@cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build build/bench -j$(JOBS)
	@scripts/bench.sh build/bench

fuzz: bootstrap
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DTHOTH_FUZZ=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

soak: build
	@tests/reliability/soak.sh $(BUILD) $(SOAK_SECONDS)

# The test group (cmocka) to build the test, the bench group for qemu and
# busybox; only the binaries that go into the guest are built.
numa-vm:
	@scripts/bootstrap.sh test
	@scripts/bootstrap.sh bench
	@$(CMAKE_GEN) cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTHOTH_TESTS=ON -DTHOTH_BENCH=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) --target test_numa_channel chan_service bench_scale thothctl \
	       test_rtable_thothd thothd
	@scripts/qemu-numa.sh --build $(BUILD) --fetch-kernel

install: bootstrap
	@cmake -S . -B $(INSTALL_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
	       -DTHOTH_TESTS=OFF -DTHOTH_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(INSTALL_BUILD) -j$(JOBS)
	@DESTDIR=$(DESTDIR) cmake --install $(INSTALL_BUILD)

deb: bootstrap
	@scripts/deb.sh $(DEB_OUT)

clean:
	rm -rf build
