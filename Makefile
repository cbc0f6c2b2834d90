# squall - make · make run · make test · make bench · make fuzz · make deps · make clean
#
# SAN=1 builds everything with AddressSanitizer and UBSan (into build-san/).

CC       ?= cc
SAN      ?= 0
PKGS     := libevent jansson libpq
CHECK    := check

ifeq ($(SAN),1)
BUILD    ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT      := -O1
else
BUILD    ?= build
SANFLAGS :=
OPT      := -O2
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wformat=2 -Wcast-align -Wwrite-strings -Wundef \
            -Wno-unused-parameter -Wno-missing-field-initializers
CFLAGS   := -std=gnu11 $(OPT) -g $(WARN) -D_GNU_SOURCE -fPIC $(SANFLAGS) \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -Isdk -Iframework
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldl -lpthread
# The host exports exactly the SDK's symbols to the plugins it dlopen()s.
EXPORTS  := -Wl,--dynamic-list=sdk/squall.sym

FW_SRC   := $(filter-out framework/main.c,$(wildcard framework/*.c))
FW_OBJ   := $(FW_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libsquall.a
PLUGINS  := $(notdir $(wildcard plugins/*))
PLUGIN_SO:= $(PLUGINS:%=$(BUILD)/plugins/%.so)
EXAMPLES := $(notdir $(wildcard examples/*))
EXAMPLE_SO := $(EXAMPLES:%=$(BUILD)/examples/%.so)
TPLUGINS := $(notdir $(basename $(wildcard tests/plugins/*.c)))
TPLUG_SO := $(TPLUGINS:%=$(BUILD)/tests/plugins/%.so)
UNIT     := $(notdir $(basename $(wildcard tests/unit/check_*.c)))
INTEG    := $(notdir $(basename $(wildcard tests/integration/check_*.c)))
TESTS    := $(UNIT:%=$(BUILD)/tests/%) $(INTEG:%=$(BUILD)/tests/%)
TEST_CFLAGS := $(shell pkg-config --cflags $(CHECK) 2>/dev/null)
TEST_LIBS   := $(shell pkg-config --libs $(CHECK) 2>/dev/null)

# V=1 shows the full commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all run test bench fuzz deps deps-ok clean plugins tests
all: deps-ok $(BUILD)/squall plugins

plugins: $(PLUGIN_SO) $(EXAMPLE_SO)

$(BUILD)/%.o: %.c $(wildcard framework/*.h sdk/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(FW_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/squall: $(BUILD)/framework/main.o $(LIB) sdk/squall.sym
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) $(EXPORTS) $< $(LIB) $(LDLIBS) -o $@

# Plugins are built with the SDK's own plugin.mk, exactly as a plugin author would.
$(BUILD)/plugins/%.so: plugins/%/*.c sdk/squall.h sdk/plugin.mk
	@mkdir -p $(dir $@)
	@echo "  PLUG  $@"
	$(Q)$(MAKE) --no-print-directory -s -C plugins/$* -f $(CURDIR)/sdk/plugin.mk \
	    OUT=$(CURDIR)/$(BUILD)/plugins SQ_EXTRA_CFLAGS="$(SANFLAGS)"

$(BUILD)/examples/%.so: examples/%/*.c sdk/squall.h sdk/plugin.mk
	@mkdir -p $(dir $@)
	@echo "  PLUG  $@"
	$(Q)$(MAKE) --no-print-directory -s -C examples/$* -f $(CURDIR)/sdk/plugin.mk \
	    OUT=$(CURDIR)/$(BUILD)/examples SQ_EXTRA_CFLAGS="$(SANFLAGS)"

$(BUILD)/tests/plugins/%.so: tests/plugins/%.c sdk/squall.h
	@mkdir -p $(dir $@)
	@echo "  PLUG  $@"
	$(Q)$(CC) $(CFLAGS) -shared $< -o $@ $(shell pkg-config --libs jansson)

$(BUILD)/tests/check_%: tests/unit/check_%.c tests/check_main.h tests/unit/coro_expect.h $(LIB)
	@mkdir -p $(dir $@)
	@echo "  TEST  $@"
	$(Q)$(CC) $(CFLAGS) $(TEST_CFLAGS) $< $(LIB) $(LDLIBS) $(TEST_LIBS) -o $@

# Integration suites share tests/integration/client.c (raw sockets, a spawned host).
$(BUILD)/tests/check_%: tests/integration/check_%.c tests/integration/client.c \
                        tests/integration/client.h tests/check_main.h $(LIB) sdk/squall.sym
	@mkdir -p $(dir $@)
	@echo "  TEST  $@"
	$(Q)$(CC) $(CFLAGS) $(TEST_CFLAGS) -Itests/integration $(EXPORTS) $< \
	    tests/integration/client.c $(LIB) $(LDLIBS) $(TEST_LIBS) -o $@

tests: $(TESTS) $(TPLUG_SO) $(BUILD)/squall plugins

# Each suite runs on its own; all run even when one fails, and the target fails if any did.
test: deps
	@$(MAKE) --no-print-directory tests
	@fail=0; for t in $(TESTS); do \
	    echo "== $$t"; SQ_BUILD=$(BUILD) CK_DEFAULT_TIMEOUT=60 $$t || fail=1; \
	done; \
	if [ $$fail = 0 ]; then echo "ALL TESTS PASSED"; else echo "SOME TESTS FAILED"; exit 1; fi

run: deps
	@$(MAKE) --no-print-directory all
	exec $(BUILD)/squall -c plugins.conf

bench: deps
	@$(MAKE) --no-print-directory all
	bench/run.sh

FUZZ_TIME ?= 60
fuzz:
	@tools/deps.sh fuzz
	@mkdir -p build/fuzz/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Iframework -Isdk \
	    tests/fuzz/fuzz_http1.c framework/http1.c -o build/fuzz/fuzz_http1
	build/fuzz/fuzz_http1 -max_total_time=$(FUZZ_TIME) -max_len=16384 \
	    build/fuzz/corpus tests/fuzz/seeds 2>&1 | tail -5

# Installs the Debian packages that are missing (apt-get when root, else prints the command).
deps:
	@tools/deps.sh

deps-ok:
	@pkg-config --exists $(PKGS) || { echo "missing libraries: run 'make deps'" >&2; exit 1; }

clean:
	rm -rf build build-san
