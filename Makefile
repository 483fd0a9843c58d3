# golb — build, run, test, fuzz, bench.  `make help` lists the targets.
#
# MODE=release (default) builds into build/release and links bin/golb, bin/toy-backend.
# MODE=asan builds everything with AddressSanitizer + UndefinedBehaviorSanitizer into build/asan.
# OUT is where the binaries land; BINDIR, MANDIR, ... are where `make install` puts them.
# The build prints one short line per step (`  CC      src/base/buf.c`); V=1 prints the commands.

MODE      ?= release
CC        ?= gcc
FUZZ_CC   ?= clang
FUZZ_SECONDS ?= 300
PKGS      := yaml-0.1 openssl jansson libnghttp2 libpcre2-8 libcares
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lyaml -lssl -lcrypto -ljansson -lnghttp2 -lpcre2-8 -lcares)

WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
             -Wno-unused-parameter -Wvla
BASEFLAGS := -std=c11 -D_GNU_SOURCE -pthread -Isrc $(WARN) $(PKG_CFLAGS) -MMD -MP

ifeq ($(MODE),asan)
  B        := build/asan
  OUT      := build/asan/bin
  MODEFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
else
  B        := build/release
  OUT      := bin
  MODEFLAGS := -O2 -g
endif

CFLAGS   ?=
CPPFLAGS ?=
LDFLAGS  ?=

# Quiet build, the kernel's way: $(call say,CC,FILE) prints "  CC      FILE" and $(Q) hides the
# command; V=1 shows every command instead, `make -s` neither.
ifeq ($(V),1)
  Q   :=
  say :=
else
  Q   := @
  say = $(if $(findstring s,$(firstword -$(MAKEFLAGS))),,@printf '  %-7s %s\n' '$(1)' '$(2)';)
endif
ALL_CFLAGS  := $(BASEFLAGS) $(MODEFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS := $(MODEFLAGS) -pthread $(LDFLAGS)

# src/ is one folder per layer (docs/architecture.md); includes name the folder: "base/buf.h".
LAYERS    := base net http config upstream lb core session server admin
SRCS      := $(foreach d,$(LAYERS),$(wildcard src/$(d)/*.c))
HDRS      := $(foreach d,$(LAYERS),$(wildcard src/$(d)/*.h))
OBJS      := $(SRCS:src/%.c=$(B)/obj/%.o)
LIB       := $(B)/libgolb.a
UNIT_SRCS := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)

.PHONY: all help deps deps-test deps-bench deps-deb deb check-deb run test check check-layers unit e2e e2e-tls fuzz fuzz-build fuzz-replay bench bench-micro route-bench fmt clean \
        install uninstall check-dist
.DEFAULT_GOAL := all

all: $(OUT)/golb $(OUT)/toy-backend

help:
	@echo "make            build bin/golb and bin/toy-backend"
	@echo "make run        install what is missing, build, start 3 toy backends + golb on examples/config.yaml"
	@echo "make test       install, build, run unit + e2e tests (plain and ASan+UBSan) and a short fuzz replay"
	@echo "make fuzz       run every fuzz target for FUZZ_SECONDS (default 300) each"
	@echo "make bench      benchmark golb against HAProxy and nginx (see bench/README.md)"
	@echo "make bench-micro  cost of single operations (bench/*_cost.c), e.g. parsing a PROXY header"
	@echo "make route-bench  micro-benchmark of the route matcher (ns per match, table memory, build time)"
	@echo "make install    install golb, toy-backend, man pages, example config, systemd unit (PREFIX, DESTDIR)"
	@echo "make uninstall  remove what make install installed (an edited config stays)"
	@echo "make deb        build the Debian packages golb and golb-toy-backend into build/deb/ (debian/)"
	@echo "make check-deb  build the Debian packages and check them (contents, scripts, lintian)"

deps:
	@scripts/install-deps.sh build
deps-test:
	@scripts/install-deps.sh build test
deps-bench:
	@scripts/install-deps.sh build bench
deps-deb:
	@scripts/install-deps.sh build deb

$(B)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

# The status page is built into admin.o (.incbin of src/admin/status_page.html, see admin.c).
$(B)/obj/admin/admin.o: src/admin/status_page.html

$(LIB): $(OBJS)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

$(B)/obj/cmd/%.o: cmd/%.c
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(OUT)/golb: $(B)/obj/cmd/golb/main.o $(LIB)
	@mkdir -p $(@D)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) $^ $(PKG_LIBS) -o $@

$(OUT)/toy-backend: $(B)/obj/cmd/toy-backend/main.o $(LIB)
	@mkdir -p $(@D)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) $^ $(PKG_LIBS) -o $@

$(B)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) $< $(LIB) $(ALL_LDFLAGS) $(PKG_LIBS) -lcriterion -o $@

# Unit tests: every tests/unit/<layer>/test_*.c is one Criterion binary.
unit: $(UNIT_BINS)
	@scripts/run-unit.sh $(UNIT_BINS)

# End-to-end tests: real golb and toy-backend processes on ephemeral loopback ports.
e2e: $(OUT)/golb $(OUT)/toy-backend
	python3 tests/e2e/run.py --bindir $(OUT)

# The same end-to-end tests over TLS where they make sense (golb gets an HTTPS listener and the
# tests' HTTP clients use it; tests that speak raw TCP to golb stay plain).
E2E_TLS_FILES := -k test_20_quickstart. -k test_40_http1. -k test_50_proxy. -k test_60_bodies. \
                 -k test_85_hostile_vectors. -k test_86_tunnel. -k test_89_splice.
e2e-tls: $(OUT)/golb $(OUT)/toy-backend
	python3 tests/e2e/run.py --bindir $(OUT) --tls $(E2E_TLS_FILES)

check: unit e2e

# Every #include goes down the layers (scripts/check-layers.sh), and the check itself fails on a
# wrong one (the self-test plants one in a copy of src/).
check-layers:
	@tests/check-layers-selftest.sh

run: deps all
	@scripts/demo.sh

test: deps-test
	@scripts/test.sh

# Fuzz targets: clang + libFuzzer, ASan and UBSan, the whole src/ compiled in.
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -pthread -Isrc -g -O1 $(PKG_CFLAGS) \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
build/fuzz/%: tests/fuzz/%.c $(SRCS) $(HDRS) $(wildcard tests/fuzz/*.h) src/admin/status_page.html
	@mkdir -p $(@D)
	$(call say,FUZZ,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) $< $(SRCS) $(PKG_LIBS) -o $@

fuzz-build: $(FUZZ_BINS)

fuzz-replay: $(FUZZ_BINS)
	@scripts/fuzz.sh replay $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh run $(FUZZ_BINS)

bench: deps-bench all
	@bench/run.sh

# Micro-benchmarks: each bench/*_cost.c is a program linked with the library that prints ns per
# operation (bench/README.md); not part of `make bench`'s comparison with other proxies.
BENCH_MICRO := $(patsubst bench/%.c,$(B)/bench/%,$(wildcard bench/*_cost.c))
$(B)/bench/%: bench/%.c $(LIB)
# The route matcher alone (bench/route_bench.c, make route-bench) is built by the same rule.
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) $< $(LIB) $(ALL_LDFLAGS) $(PKG_LIBS) -o $@

bench-micro: $(BENCH_MICRO)
	@for b in $(BENCH_MICRO); do $$b || exit 1; done

route-bench: $(B)/bench/route_bench
	@$(B)/bench/route_bench $(ROUTE_BENCH_ROUNDS)

# ---- install: GNU-style directory variables; DESTDIR stages the tree (packaging, tests).
# SYSCONFDIR is /etc whatever PREFIX is: golb.service and golb(8) name /etc/golb/golb.yml, where an
# operator looks for it. UNITDIR under PREFIX: systemd also reads /usr/local/lib/systemd/system.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INSTALL    ?= install
CONF       := $(DESTDIR)$(SYSCONFDIR)/golb/golb.yml
# Type=notify-reload needs systemd >= 253; older ones (Debian 12: 252) would ignore the line and
# run golb as Type=simple, so there the unit gets Type=notify + ExecReload (SIGHUP) instead.
# Packaging for another machine: SYSTEMD_TYPE=notify-reload or SYSTEMD_TYPE=notify.
SYSTEMD_VERSION := $(shell systemctl --version 2>/dev/null | awk 'NR == 1 { print $$2 + 0 }')
SYSTEMD_TYPE    ?= $(if $(shell [ "$(SYSTEMD_VERSION)" ] && [ $(SYSTEMD_VERSION) -lt 253 ] && echo old),notify,notify-reload)
ifeq ($(SYSTEMD_TYPE),notify)
  UNIT_TYPE_SED := -e 's|^Type=notify-reload$$|Type=notify\nExecReload=/bin/kill -HUP $$MAINPID|'
endif

# The release build only (an ASan build is no server to install). The example config never
# replaces an existing one: that is the operator's.
install: all
	@test "$(MODE)" = release || { echo "make install installs the release build; run it without MODE=$(MODE)" >&2; exit 2; }
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(SYSCONFDIR)/golb $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 755 $(OUT)/golb $(OUT)/toy-backend $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 docs/man/golb.8 $(DESTDIR)$(MANDIR)/man8/golb.8
	$(INSTALL) -m 644 docs/man/golb.yml.5 $(DESTDIR)$(MANDIR)/man5/golb.yml.5
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' $(UNIT_TYPE_SED) dist/golb.service \
	    > $(DESTDIR)$(UNITDIR)/golb.service.tmp
	chmod 644 $(DESTDIR)$(UNITDIR)/golb.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/golb.service.tmp $(DESTDIR)$(UNITDIR)/golb.service
	@if [ -e $(CONF) ]; then echo "keeping the existing $(CONF)"; \
	 else echo "$(INSTALL) -m 644 dist/golb.yml $(CONF)"; $(INSTALL) -m 644 dist/golb.yml $(CONF); fi

# Removes exactly what install put. The config goes only while it is still the shipped example:
# an edited one is the operator's work and stays (with a note), and so does its directory.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/golb $(DESTDIR)$(BINDIR)/toy-backend \
	    $(DESTDIR)$(MANDIR)/man8/golb.8 $(DESTDIR)$(MANDIR)/man5/golb.yml.5 \
	    $(DESTDIR)$(UNITDIR)/golb.service
	@if cmp -s dist/golb.yml $(CONF); then echo "rm -f $(CONF)"; rm -f $(CONF); \
	 elif [ -e $(CONF) ]; then echo "keeping $(CONF): it differs from the example (remove it by hand)"; fi
	@rmdir $(DESTDIR)$(SYSCONFDIR)/golb 2>/dev/null || true

# The man pages (mandoc lint, every config key documented) and the install/uninstall file lists.
check-dist: all
	@tests/check-man.sh
	@tests/check-install.sh

# ---- Debian packages (debian/): dpkg-buildpackage -b on a copy of the sources in build/deb/, so
# its `debian/rules clean` (make clean) never touches this tree's build/ and bin/. The .deb files,
# .buildinfo and .changes end up in build/deb/.
deb: deps-deb
	@scripts/build-deb.sh

# Builds the packages (as make deb) and checks them: file lists, conffile, maintainer scripts, unit,
# man pages, an install into a throwaway root, lintian --fail-on error. About 20 s; part of make test.
check-deb: deps-deb
	@tests/check-deb.sh

fmt:
	clang-format -i $(SRCS) $(HDRS) cmd/*/*.c $(UNIT_SRCS) tests/fuzz/*.c bench/*.c

clean:
	rm -rf build bin

-include $(OBJS:.o=.d) $(wildcard $(B)/obj/cmd/*/*.d)
