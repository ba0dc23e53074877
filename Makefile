# eventrig: `make` builds, `make test` runs every test, `make demo` runs the
# bundled suite on the embedded default, `make deps` installs what is missing.
# `make test` and `make demo` first install what is missing of the package
# groups they need (ci/deps.sh: demo for `make demo`, test for `make test`).

PKGS      := rdkafka hiredis libcurl jansson libpq libcrypto libxml-2.0 yaml-0.1
CC        ?= cc
# recursive (=) so pkg-config runs only when a recipe needs it, after deps
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lpthread -lm
WARN      := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
BASE       = -std=c11 -D_GNU_SOURCE $(WARN) -g -Iharness $(PKG_CFLAGS)
SAN       := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
             -fno-omit-frame-pointer

# harness/<layer>/*.c: folders by layer (README "How it is built");
# ci/layers.sh keeps each layer's includes to the layers below it
LAYERS    := base adapters lang report run steps cli
LIB_SRC   := $(filter-out harness/cli/main.c,$(wildcard $(LAYERS:%=harness/%/*.c)))
HDRS      := $(wildcard $(LAYERS:%=harness/%/*.h))
REL_OBJ   := $(LIB_SRC:harness/%.c=build/rel/%.o)
ASAN_OBJ  := $(LIB_SRC:harness/%.c=build/asan/%.o)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)
ITEST_SRC := $(wildcard tests/itest/itest_*.c)
ITEST_BIN := $(ITEST_SRC:tests/itest/%.c=build/asan/itest/%)
TEST_SUPPORT_SRC := $(wildcard tests/support/*.c)
TEST_SUPPORT_BIN := $(TEST_SUPPORT_SRC:tests/support/%.c=build/asan/support/%)

.PHONY: all deps test check demo clean lint format asan tests-build sut mutants mutants-real

all: eventrig sut

# the reference system under test (its own Makefile; shares no code)
sut:
	@$(MAKE) --no-print-directory -C sut

eventrig: build/rel/cli/main.o build/rel/libeventrig.a
	$(CC) -O2 -o $@ $^ $(PKG_LIBS)

build/rel/%.o: harness/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(BASE) -O2 -c -o $@ $<

build/rel/libeventrig.a: $(REL_OBJ)
	ar rcs $@ $^

build/asan/%.o: harness/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(BASE) -O1 $(SAN) -c -o $@ $<

build/asan/libeventrig.a: $(ASAN_OBJ)
	ar rcs $@ $^

build/asan/eventrig: build/asan/cli/main.o build/asan/libeventrig.a
	$(CC) $(SAN) -o $@ $^ $(PKG_LIBS)

build/asan/tests/%: tests/unit/%.c tests/unit/tap.h build/asan/libeventrig.a | build/asan/tests
	$(CC) $(BASE) -O1 $(SAN) -Itests/unit -Itests/itest -o $@ $< build/asan/libeventrig.a $(PKG_LIBS)

# integration test programs: run by tests/integration/*.sh with servers up
build/asan/itest/%: tests/itest/%.c tests/unit/tap.h build/asan/libeventrig.a | build/asan/itest
	$(CC) $(BASE) -O1 $(SAN) -Itests/unit -Itests/itest -o $@ $< build/asan/libeventrig.a $(PKG_LIBS)

build/asan/support/%: tests/support/%.c build/asan/libeventrig.a | build/asan/support
	$(CC) $(BASE) -O1 $(SAN) -o $@ $< build/asan/libeventrig.a $(PKG_LIBS)

build/rel build/asan build/asan/tests build/asan/itest build/asan/support:
	mkdir -p $@

asan: build/asan/eventrig

tests-build: build/asan/eventrig $(UNIT_BIN) $(ITEST_BIN) $(TEST_SUPPORT_BIN) sut

# every package group (ci/deps.sh lists them); DEPS=GROUP... picks groups
DEPS ?= all
deps:
	@ci/deps.sh $(DEPS)

# every test: unit tests, integration tests, under ASan + UBSan
test:
	@ci/deps.sh test
	@$(MAKE) --no-print-directory check

check: tests-build eventrig
	@tests/run.sh

demo:
	@ci/deps.sh demo
	@$(MAKE) --no-print-directory eventrig sut
	@ci/demo.sh

# the suite against the correct reference service and each of its mutants
mutants: deps
	@$(MAKE) --no-print-directory eventrig sut
	@ci/mutants.sh

# the same against a real Apache Kafka broker (ci/kafka/, ci/local-kafka.env.json)
mutants-real: deps
	@$(MAKE) --no-print-directory eventrig sut
	@ci/kafka/kafka.sh jars >/dev/null
	@ci/mutants.sh --env ci/local-kafka.env.json

lint:
	@ci/lint.sh

format:
	clang-format -i harness/*/*.c harness/*/*.h tests/unit/*.c tests/unit/*.h tests/itest/*.c

clean:
	rm -rf build eventrig
	@$(MAKE) --no-print-directory -C sut clean
