# Roost: plain GNU make.  `make` builds roostd and roostctl, `make check` runs
# every test, `make demo` brings up a local Roost with Dovecot.
# SANITIZER=address|undefined builds instrumented binaries in their own dir.

CC		?= cc
PKG_CONFIG	?= pkg-config
PREFIX		?= /usr/local

SANITIZER	?=
ifeq ($(SANITIZER),)
BUILD		?= build
else
BUILD		?= build-$(SANITIZER)
endif

WARN	 = -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes \
	   -Wmissing-prototypes -Wformat=2
CFLAGS	?= -O2 -g
CFLAGS	+= -std=c11 $(WARN) -fno-strict-aliasing -ffp-contract=off
CPPFLAGS += -D_GNU_SOURCE -Isrc/common -Isrc/roostd \
	   -DROOST_VERSION=\"$(VERSION)\"
VERSION	:= $(shell cat VERSION 2>/dev/null || echo 0.0.0)

ifeq ($(SANITIZER),address)
CFLAGS	+= -fsanitize=address -fno-omit-frame-pointer
LDFLAGS	+= -fsanitize=address
else ifeq ($(SANITIZER),undefined)
CFLAGS	+= -fsanitize=undefined -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=undefined
else ifneq ($(SANITIZER),)
$(error SANITIZER must be address or undefined)
endif

DEPS_D	 = libevent libevent_openssl openssl jansson sqlite3 libcurl libpq
DEPS_C	 = libcurl jansson
CFLAGS_D := $(shell $(PKG_CONFIG) --cflags $(DEPS_D))
LIBS_D	:= $(shell $(PKG_CONFIG) --libs $(DEPS_D)) -lm -pthread
CFLAGS_C := $(shell $(PKG_CONFIG) --cflags $(DEPS_C))
LIBS_C	:= $(shell $(PKG_CONFIG) --libs $(DEPS_C))
LIBS_T	:= $(shell $(PKG_CONFIG) --libs cmocka)

COMMON_SRC	= $(wildcard src/common/*.c)
ROOSTD_SRC	= $(filter-out src/roostd/main.c,$(wildcard src/roostd/*.c))
ROOSTCTL_SRC	= $(wildcard src/roostctl/*.c)
UNIT_SRC	= $(wildcard tests/unit/test_*.c)
FUZZ_SRC	= $(wildcard tests/fuzz/fuzz_*.c)

COMMON_OBJ	= $(COMMON_SRC:%.c=$(BUILD)/%.o)
ROOSTD_OBJ	= $(ROOSTD_SRC:%.c=$(BUILD)/%.o)
ROOSTCTL_OBJ	= $(ROOSTCTL_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN	= $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_REPLAY	= $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

all: $(BUILD)/roostd $(BUILD)/roostctl $(BUILD)/roost-loadgen

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(CFLAGS_D) $(CFLAGS_C) -MMD -MP -c $< -o $@

$(BUILD)/libroost.a: $(COMMON_OBJ) $(ROOSTD_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/roostd: $(BUILD)/src/roostd/main.o $(BUILD)/libroost.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_D)

$(BUILD)/roostctl: $(ROOSTCTL_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_C)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libroost.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(CFLAGS_D) -o $@ $< $(BUILD)/libroost.a \
	    $(LDFLAGS) $(LIBS_D) $(LIBS_T)

unit: $(UNIT_BIN) $(FUZZ_REPLAY)

# Fuzz targets built with the ordinary compiler and a file-replaying main:
# `make check` replays the corpus (seeds and every crash found) through them.
$(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/standalone.c $(BUILD)/libroost.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(CFLAGS_D) -o $@ $< tests/fuzz/standalone.c \
	    $(BUILD)/libroost.a $(LDFLAGS) $(LIBS_D)

# Coverage-guided fuzzing with libFuzzer (clang, libclang-rt-14-dev):
# make fuzz [FUZZ_SECONDS=60]; new crashes land in tests/fuzz/corpus/NAME/.
FUZZ_SECONDS	?= 60
FUZZ_CC		?= clang
fuzz:
	@for f in $(FUZZ_SRC); do \
		n=$$(basename $$f .c); \
		mkdir -p build-fuzz/corpus-$$n tests/fuzz/corpus/$${n#fuzz_}; \
		$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined $(CPPFLAGS) \
		    $(CFLAGS_D) -o build-fuzz/$$n $$f $(COMMON_SRC) $(ROOSTD_SRC) \
		    $(LIBS_D) || exit 1; \
		echo "fuzzing $$n for $(FUZZ_SECONDS)s"; \
		build-fuzz/$$n -max_total_time=$(FUZZ_SECONDS) \
		    -artifact_prefix=tests/fuzz/corpus/$${n#fuzz_}/crash- \
		    build-fuzz/corpus-$$n tests/fuzz/corpus/$${n#fuzz_} \
		    2>&1 | tail -3 || exit 1; \
	done

# Every test: cmocka units, then black-box scenarios against the binaries
# (and real Dovecot where a scenario needs it).  Ends "N passed, N failed".
# Dovecot scenarios two at a time: each has its own ports, and most of their
# time is spent waiting (TEST_JOBS=1 runs them one by one).
TEST_JOBS	?= 2

check: all unit
	python3 tests/run.py --build $(BUILD) --jobs $(TEST_JOBS) $(TESTS)

demo: all
	./scripts/demo start

bench: all
	./bench/run

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/roostd $(DESTDIR)$(PREFIX)/sbin/roostd
	install -m 755 $(BUILD)/roostctl $(DESTDIR)$(PREFIX)/bin/roostctl

clean:
	rm -rf build build-address build-undefined build-fuzz

.PHONY: all unit fuzz check demo bench install clean

include bench/Makefile.inc

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
