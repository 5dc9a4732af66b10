# bpfnet build. `make` builds the BPF objects and the TypeScript.
CLANG      ?= clang
BPF_CFLAGS ?= -O2 -g -target bpf -Wall -Werror -I/usr/include/$(shell gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
BPF_SRC    := $(wildcard bpf/*.c)
BPF_OBJ    := $(patsubst bpf/%.c,build/bpf/%.o,$(BPF_SRC))
BPF_HDR    := $(wildcard bpf/lib/*.h)
MAP_OBJ    := build/bpf/uplink.o build/bpf/endpoint.o
# The rtnetlink/netns addon (native/), built with node-gyp against the local
# Node headers when the install has them (so nothing is downloaded).
NATIVE     := native/build/Release/bpfnet_netlink.node
NODE_DIR   ?= $(shell d=$$(dirname "$$(dirname "$$(readlink -f "$$(command -v node)")")"); [ -f "$$d/include/node/common.gypi" ] && [ -f "$$d/include/node/node_api.h" ] && echo "$$d")

.PHONY: all deps bpf native ts gen check-gen test lab bench clean

all: bpf native ts

# Installs missing system packages and npm dependencies (idempotent).
deps:
	@bash scripts/install-deps.sh

bpf: $(BPF_OBJ)

build/bpf/%.o: bpf/%.c $(BPF_HDR)
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

native: $(NATIVE)

$(NATIVE): native/netlink.c native/binding.gyp node_modules/.package-lock.json
	@echo "  NODE-GYP $@"
	@cd native && ../node_modules/.bin/node-gyp rebuild --loglevel=warn $(if $(NODE_DIR),--nodedir=$(NODE_DIR)) >/dev/null

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

ts: node_modules/.package-lock.json
	npx tsc -p tsconfig.json

# Regenerate the TypeScript map ABI (from the objects' BTF) and the API
# types (from proto/bpfnet.proto).
gen: bpf ts
	node dist/src/maps/gen/cli.js $(MAP_OBJ)
	node dist/src/api/gen.js
	npx tsc -p tsconfig.json

check-gen: bpf ts
	node dist/src/maps/gen/cli.js --check $(MAP_OBJ)
	node dist/src/api/gen.js --check

# The whole suite (BPF unit tests, integration in namespaces, units).
test: deps all
	@mkdir -p build
	npx vitest run --reporter=default --reporter=json --outputFile.json=build/test-results.json; rc=$$?; \
	  node scripts/summary.mjs build/test-results.json; exit $$rc

# The main job on a safe default: a throw-away lab in namespaces.
lab: deps all
	node dist/src/cli/main.js lab

# Every benchmark (bench/README.md), ~25 min on 2 cores: results in bench/results/
# and README.md's "Benchmarks" section. BENCH=1: install-deps.sh also installs
# what only the benchmarks need (CNI plugins, iperf3, static libc).
bench: export BENCH = 1
bench: deps all
	node dist/bench/run.js

clean:
	rm -rf build dist native/build
