# Top-level entry points.  CMake does the real work, out of tree in build/.
#   make run    bootstrap, build, start the system (see README)
#   make test   bootstrap, build with -Werror (plain and ASan+UBSan), run every test
#   make bench  build optimised and run every benchmark under bench/
#   make fuzz   build the libFuzzer targets with clang and run each for a bounded time
#   make install  build optimised (no tests) and install under PREFIX (default
#                 /usr/local), staged under DESTDIR if set (docs/INSTALL.md)

BUILD      ?= build/default
ASAN_BUILD ?= build/asan
FUZZ_BUILD ?= build/fuzz
INSTALL_BUILD ?= build/install
JOBS       ?= $(shell nproc)
PREFIX     ?= /usr/local
DESTDIR    ?=
FUZZ_SECONDS ?= 20

CMAKE_FLAGS = -DTHOTH_WERROR=ON

.PHONY: all bootstrap build asan test run bench fuzz install clean

all: build

bootstrap:
	@scripts/bootstrap.sh

build: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

asan: bootstrap
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTHOTH_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

test: build asan
	@echo "== tests (RelWithDebInfo) =="
	@ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)
	@echo "== tests (ASan+UBSan) =="
	@ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS)

run: build
	@scripts/run.sh $(BUILD)

bench: bootstrap
	@cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build build/bench -j$(JOBS)
	@scripts/bench.sh build/bench

fuzz: bootstrap
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DTHOTH_FUZZ=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

install: bootstrap
	@cmake -S . -B $(INSTALL_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
	       -DTHOTH_TESTS=OFF -DTHOTH_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(INSTALL_BUILD) -j$(JOBS)
	@DESTDIR=$(DESTDIR) cmake --install $(INSTALL_BUILD)

clean:
	rm -rf build
