# Top-level build. Plain GNU make: every src/**/*.c outside src/cmd goes into
# one static library; each src/cmd/<name>/ directory becomes build/bin/<name>;
# each tests/unit/**/*.c becomes its own cmocka test binary. C and Python code
# for proto/*.proto is generated into the build tree, never committed.

BUILD    ?= build
SANITIZE ?=
PYTHON   ?= /usr/bin/python3
V        ?= 0

CC       ?= gcc
PKGS     := grpc libprotobuf-c libgit2 jansson libmicrohttpd openssl zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
            -fno-strict-aliasing -D_GNU_SOURCE -pthread \
            -Isrc -I$(BUILD)/gen -include src/base/banned.h $(PKG_CFLAGS)
GEN_CFLAGS = $(filter-out -Werror -include src/base/banned.h,$(CFLAGS)) -w
LDLIBS   += $(PKG_LIBS) -lpthread -lm
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CFLAGS   += -DGITALY_VERSION='"$(VERSION)"'

ifeq ($(V),0)
Q := @
endif

# --- protos -----------------------------------------------------------------
PROTO_SRC  := $(shell find proto -name '*.proto' | sort)
WKT        := google/protobuf/any.proto google/protobuf/duration.proto \
              google/protobuf/timestamp.proto google/protobuf/descriptor.proto \
              google/protobuf/empty.proto google/protobuf/field_mask.proto
PROTO_C    := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTO_SRC)) \
              $(patsubst %.proto,$(BUILD)/gen/%.pb-c.c,$(WKT))
PROTO_OBJ  := $(PROTO_C:.c=.o)
PROTO_STAMP := $(BUILD)/gen/.stamp
PY_STAMP   := $(BUILD)/py/.stamp

# --- sources ----------------------------------------------------------------
LIB_SRC  := $(shell find src -name '*.c' -not -path 'src/cmd/*' | sort)
LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))
LIB      := $(BUILD)/libgitaly.a
CMDS     := $(notdir $(shell find src/cmd -mindepth 1 -maxdepth 1 -type d | sort))
BINS     := $(addprefix $(BUILD)/bin/,$(CMDS))
UNIT_SRC := $(shell find tests/unit -name '*.c' -not -path 'tests/unit/support/*' | sort)
UNIT_SUP := $(shell find tests/unit/support -name '*.c' 2>/dev/null | sort)
UNIT_SUP_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(UNIT_SUP))
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))

.PHONY: all deps build run test unit unit-asan integration bench clean py
.DEFAULT_GOAL := all

all: deps
	$(Q)$(MAKE) --no-print-directory build

deps:
	$(Q)./scripts/deps.sh

build: $(LIB) $(BINS) $(PY_STAMP)

# Generated C (protoc-c) for our protos and the well-known types they import.
$(PROTO_STAMP): $(PROTO_SRC)
	$(Q)mkdir -p $(BUILD)/gen
	$(Q)protoc-c --c_out=$(BUILD)/gen -Iproto -I/usr/include $(PROTO_SRC)
	$(Q)protoc-c --c_out=$(BUILD)/gen -I/usr/include $(WKT)
	$(Q)touch $@
$(PROTO_C): $(PROTO_STAMP)
	@:

# Python stubs for the integration tests, generated from the same protos.
$(PY_STAMP): $(PROTO_SRC)
	$(Q)mkdir -p $(BUILD)/py
	$(Q)protoc -Iproto -I/usr/include --python_out=$(BUILD)/py \
	  --grpc_python_out=$(BUILD)/py --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
	  $(PROTO_SRC)
	$(Q)touch $@
py: $(PY_STAMP)

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(Q)$(CC) $(GEN_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(PROTO_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ) $(PROTO_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

# A binary's sources: everything in src/cmd/<name>/.
.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/bin/%: $$(foreach f,$$(wildcard src/cmd/$$*/*.c),$(BUILD)/obj/$$(basename $$(f)).o) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LINK  $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# git runs gitaly-hooks once per hook of a push, the update hook once per
# ref, so its start-up is on the push path: grpc and its ~50 dependency
# libraries, libstdc++ and libgcc are linked statically and without PIE,
# which leaves the dynamic loader almost nothing to resolve (about 40 ms of
# CPU per run down to about 8 on the development VM, then ~0.8 ms less
# with libstdc++ static; docs/PERFORMANCE.md). libc is static too (no
# dynamic loader at all, ~2 ms less per run): the hooks only dial a unix
# socket, so the linker's warnings about getaddrinfo and dlopen in static
# programs do not apply to them.
HOOKS_STATIC_LIBS := $(shell pkg-config --static --libs grpc libprotobuf-c jansson openssl zlib 2>/dev/null)
ifeq ($(SANITIZE),)
$(BUILD)/bin/gitaly-hooks: LDFLAGS += -static -no-pie
$(BUILD)/bin/gitaly-hooks: LDLIBS = $(HOOKS_STATIC_LIBS) -lstdc++ -lpthread -lm -ldl
endif

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(UNIT_SUP_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# --- running ----------------------------------------------------------------
run: all
	$(Q)./scripts/run.sh $(BUILD)

unit: $(UNIT_BIN) $(BINS)
	$(Q)./scripts/run-unit.sh $(BUILD) $(UNIT_BIN)

unit-asan:
	$(Q)CFLAGS="-O1 -g" $(MAKE) --no-print-directory BUILD=build-asan SANITIZE=1 unit

integration: build
	$(Q)GITALY_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

test: deps
	$(Q)$(MAKE) --no-print-directory build
	$(Q)$(MAKE) --no-print-directory unit
	$(Q)$(MAKE) --no-print-directory integration
	$(Q)$(MAKE) --no-print-directory unit-asan

bench: build
	$(Q)./bench/run.sh $(BUILD)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
