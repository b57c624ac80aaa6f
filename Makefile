# idprov - top-level build.
#
#   make            build everything (plain, optimised) into build/plain
#   make check      install missing packages, then build and run the whole
#                   suite twice: under ASan+UBSan (build/asan) and plain;
#                   then every fuzz corpus file replayed once through its
#                   target (ASan+UBSan, deterministic), one run of each benchmark
#                   (passes when it completes; no ratio asserted) and lint
#   make demo       the production-line-to-site run on embedded defaults
#   make bench      benchmarks, printed as ratios against ceilings measured
#                   in the same run
#   make fuzz       a bounded libFuzzer run of every fuzz target (FUZZ_SECONDS
#                   each, default 60);  make fuzz-replay: the corpus replay only
#   make install    PREFIX (default /usr/local) and DESTDIR are honoured; the
#                   systemd units go to PREFIX/lib/systemd/system, the udev
#                   rule to UDEVRULESDIR (PREFIX/lib/udev/rules.d), the docs
#                   to DOCDIR (PREFIX/share/doc/idprov), a default
#                   idprovd.conf to SYSCONFDIR/idprov (/etc/idprov) if absent
#   make lint       cppcheck + clang-tidy;  make asan: the ASan suite only
#   make stress     load and faults against a real idprovd, ending with a
#                   table (tests/stress/stress.sh, docs/reliability.md); not
#                   part of make check; VARIANT=asan runs it under ASan
#
# Each component directory has a module.mk that adds its sources, programs
# and tests to the variables below; this file only knows the rules.

.SUFFIXES:
.DELETE_ON_ERROR:
# module.mk files may define rules (server/module.mk generates a source):
# plain `make` still means `make all`.
.DEFAULT_GOAL := all
# Objects are kept (a test binary's object is otherwise an intermediate file);
# not ".SECONDARY:", which would let a moved source leave a stale program.
SHELL := /bin/bash

PREFIX  ?= /usr/local
DESTDIR ?=
VARIANT ?= plain
B       := build/$(VARIANT)

CC      ?= cc
ifeq ($(origin CC),default)
CC      := gcc
endif
FUZZ_CC ?= clang

PKGS := openssl sqlite3 libcjson libcurl libserialport libusb-1.0 libqrencode libevent \
        libevent_openssl libevent_pthreads avahi-client
# Libraries go to -isystem so that a warning in their headers never breaks -Werror.
PKG_CFLAGS = $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(PKGS) 2>/dev/null))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wcast-qual -Wstrict-prototypes \
        -Wmissing-prototypes -Wvla -Wformat=2 -Wundef -Wwrite-strings \
        -Wimplicit-fallthrough -Werror
STD  := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE

ifeq ($(VARIANT),asan)
OPT  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDSAN := -fsanitize=address,undefined
else
OPT  := -O2 -g
LDSAN :=
endif

CFLAGS_ALL = $(STD) $(WARN) $(OPT) -I. $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(LDSAN) $(LDFLAGS)

# Filled in by the module.mk files:
#   LIBS_<name> += sources of the static library <name> (formats, server, ...)
#   PROGS += program names; <prog>_SRCS = sources with main(); <prog>_LIBS =
#            project libraries it links, in link order; <prog>_PKGS = pkg-config
#            packages (default: all)
#   UNIT_TESTS += tests/unit/test_x.c (each a Check suite, linked with all libs)
#   INTEG_TESTS += tests/integration/<component>/test_x.c (a Check suite that starts
#            TLS servers, opens SQLite files, kills processes or drives ptys;
#            built as $(B)/tests/integration/<component>/test_x)
#   TEST_TOOLS += tests/tools/x.c (a helper program the shell tests run: $(B)/tools/x,
#            linked with the project libraries; x_PKGS = pkg-config packages besides PKGS)
#   BENCHES += tests/bench/bench_x.c
#   FUZZERS += tests/fuzz/fuzz_x.c; fuzz_x_SRCS = project sources compiled in
#   MANPAGES += docs/man/x.N
PROJECT_LIBS :=
EXTERN_LIBS :=
UNITS := $(wildcard samples/*.service)
PROGS :=
UNIT_TESTS :=
INTEG_TESTS :=
TEST_TOOLS :=
BENCHES :=
FUZZERS :=
MANPAGES :=

include $(sort $(wildcard */module.mk formats/*/module.mk server/*/module.mk tests/*/module.mk))

# ---------------------------------------------------------------- rules
lib_path = $(B)/lib/libidprov-$(1).a
objs_of  = $(patsubst %.c,$(B)/obj/%.o,$(1))

# EXTERN_LIBS: archives a module.mk makes by a rule of its own (lib_path names).
ALL_LIB_ARCHIVES = $(foreach l,$(PROJECT_LIBS) $(EXTERN_LIBS),$(call lib_path,$(l)))
PROG_BINS   = $(addprefix $(B)/bin/,$(PROGS))
UNIT_BINS   = $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_TESTS))
INTEG_BINS  = $(patsubst tests/%.c,$(B)/tests/%,$(INTEG_TESTS))
BENCH_BINS  = $(patsubst tests/bench/%.c,$(B)/bench/%,$(BENCHES))
TOOL_BINS   = $(patsubst tests/tools/%.c,$(B)/tools/%,$(TEST_TOOLS))

.PHONY: all programs build-tests check check-variant demo bench fuzz fuzz-build install clean \
        deps deps-quiet asan lint stress
# Entry points first install missing packages, then re-run make so that the
# pkg-config flags are read after the packages exist (fresh machine).
all: deps-quiet
	@$(MAKE) --no-print-directory programs
programs: $(PROG_BINS)
build-tests: $(PROG_BINS) $(UNIT_BINS) $(INTEG_BINS) $(TOOL_BINS)

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

-include $(shell find build/$(VARIANT)/obj -name '*.d' 2>/dev/null)
.PRECIOUS: $(B)/obj/%.o

define LIB_template
$(call lib_path,$(1)): $(call objs_of,$(LIBS_$(1)))
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach l,$(PROJECT_LIBS),$(eval $(call LIB_template,$(l))))

define PROG_template
$(B)/bin/$(1): $(call objs_of,$($(1)_SRCS)) $(foreach l,$($(1)_LIBS),$(call lib_path,$(l)))
	@mkdir -p $$(@D)
	$(CC) $(LDFLAGS_ALL) -o $$@ $$^ $(if $($(1)_PKGS),$$(shell pkg-config --libs $($(1)_PKGS)) -lpthread,$$(PKG_LIBS))
endef
$(foreach p,$(PROGS),$(eval $(call PROG_template,$(p))))

# Check suites (unit and integration) link every project library (server
# before formats) and all packages.
UNIT_COMMON = $(B)/obj/tests/unit/check_main.o $(B)/obj/tests/unit/helpers.o
CHECK_LINK = $(CC) $(LDFLAGS_ALL) -o $@ $< $(UNIT_COMMON) \
		$(ALL_LIB_ARCHIVES) $(ALL_LIB_ARCHIVES) $(PKG_LIBS) $(CHECK_LIBS)
$(UNIT_BINS): $(B)/tests/%: $(B)/obj/tests/unit/%.o $(UNIT_COMMON) $(ALL_LIB_ARCHIVES)
	@mkdir -p $(@D)
	$(CHECK_LINK)
$(INTEG_BINS): $(B)/tests/integration/%: $(B)/obj/tests/integration/%.o $(UNIT_COMMON) \
		$(ALL_LIB_ARCHIVES)
	@mkdir -p $(@D)
	$(CHECK_LINK)

# Tools may use the project libraries (only the objects they call are linked).
$(B)/tools/%: $(B)/obj/tests/tools/%.o $(ALL_LIB_ARCHIVES)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(ALL_LIB_ARCHIVES) $(ALL_LIB_ARCHIVES) \
		$(if $($*_PKGS),$(shell pkg-config --libs $($*_PKGS))) $(PKG_LIBS)
# A tool's own packages (x_PKGS) add their compile flags to its object.
tool_name = $(basename $(notdir $(1)))
$(foreach t,$(TEST_TOOLS),$(if $($(call tool_name,$(t))_PKGS),$(eval \
	$(B)/obj/$(t:.c=.o): PKG_CFLAGS += $$(patsubst -I%,-isystem %,$$(shell \
	pkg-config --cflags $($(call tool_name,$(t))_PKGS))))))

$(B)/bench/%: $(B)/obj/tests/bench/%.o $(ALL_LIB_ARCHIVES)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(ALL_LIB_ARCHIVES) $(ALL_LIB_ARCHIVES) $(PKG_LIBS)

# Fuzz targets: clang + libFuzzer, the parsers compiled in from source so that
# coverage reaches them (Debian's libraries are not instrumented).
FUZZ_FLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 -I. \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
# Each source is compiled once into build/fuzz/obj (the same flags for every
# target), then each target links the objects it lists (fuzz_<name>_SRCS).
build/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@
-include $(shell find build/fuzz/obj -name '*.d' 2>/dev/null)
fuzz_objs = $(patsubst %.c,build/fuzz/obj/%.o,$(filter %.c,$(1))) $(filter-out %.c,$(1))
define FUZZ_template
build/fuzz/$(basename $(notdir $(1))): $(call fuzz_objs,$(1) $($(basename $(notdir $(1)))_SRCS))
	@mkdir -p $$(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $$@ $$^ $$(PKG_LIBS)
endef
$(foreach f,$(FUZZERS),$(eval $(call FUZZ_template,$(f))))
FUZZ_BINS = $(foreach f,$(FUZZERS),build/fuzz/$(basename $(notdir $(f))))

# ---------------------------------------------------------------- entry points
deps:
	@.ci/install-deps
deps-quiet:
	@.ci/install-deps

# make check builds with one job per core unless make was given -j itself.
# Then the two suites run side by side, as the tests are isolated from each
# other (each its own temporary directory, ports the kernel picks, network
# namespaces, veth and avahi host names with its PID in them) and most of
# their time is spent waiting on servers, daemons and browsers: the ASan
# suite beside the plain suite and then the fuzz corpus replay. Lint and the
# benchmark smoke run, which keep a core busy, come after. The suites' lines
# are prefixed with the variant and each test's block is written whole
# (tests/run-suite).
CHECK_J = $(if $(findstring -j,$(MAKEFLAGS)),,-j$(shell nproc 2>/dev/null || echo 2))
check: deps
	@rm -f build/results-* build/fuzz.out
	$(MAKE) --no-print-directory $(CHECK_J) VARIANT=asan build-tests
	$(MAKE) --no-print-directory $(CHECK_J) VARIANT=plain build-tests $(BENCH_BINS)
	$(MAKE) --no-print-directory $(CHECK_J) fuzz-build
	@tests/run-suite build/asan build/results-asan & a=$$!; \
	{ tests/run-suite build/plain build/results-plain; \
	  tests/run-fuzz --replay build/results-fuzz >build/fuzz.out 2>&1; } & p=$$!; \
	wait $$a $$p; cat build/fuzz.out; true
	@tests/run-bench build/plain --smoke build/results-bench || true
	@if $(MAKE) --no-print-directory -s lint >build/lint.log 2>&1; then \
		echo "[lint] PASS cppcheck + clang-tidy"; echo "1 0" >build/results-lint; \
	else echo "[lint] FAIL cppcheck + clang-tidy"; tail -n 40 build/lint.log; \
		echo "0 1" >build/results-lint; fi
	@tests/summarize build/results-asan build/results-plain build/results-fuzz \
		build/results-bench build/results-lint

check-variant: deps
	@$(MAKE) --no-print-directory build-tests
	@tests/run-suite $(B) $(B)/results && tests/summarize $(B)/results

fuzz-build: $(FUZZ_BINS)
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-60} tests/run-fuzz build/results-fuzz; \
		tests/summarize build/results-fuzz

.PHONY: fuzz-replay
fuzz-replay: deps
	@$(MAKE) --no-print-directory fuzz-build
	@tests/run-fuzz --replay build/results-fuzz; tests/summarize build/results-fuzz

# make asan: the suite under ASan+UBSan only (the fast development loop).
asan: deps
	@$(MAKE) --no-print-directory VARIANT=asan check-variant

# make lint: cppcheck and clang-tidy with the checks STYLE.md names.
TIDY_CHECKS := clang-analyzer-*,bugprone-*,cert-err33-c,-bugprone-easily-swappable-parameters,$\
-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling
LINT_SRCS = $(filter-out build/%,$(sort $(foreach l,$(PROJECT_LIBS),$(LIBS_$(l))) \
            $(foreach p,$(PROGS),$($(p)_SRCS))))
lint: deps
	cppcheck --quiet --enable=warning,portability --error-exitcode=1 --inline-suppr \
		-I. $(LINT_SRCS)
	clang-tidy --quiet --warnings-as-errors='*' --checks='$(TIDY_CHECKS)' $(LINT_SRCS) -- \
		$(STD) -I. $(PKG_CFLAGS)

bench: deps
	$(MAKE) --no-print-directory VARIANT=plain $(PROG_BINS) $(BENCH_BINS)
	@tests/run-bench build/plain

stress: deps
	@$(MAKE) --no-print-directory $(PROG_BINS) $(TOOL_BINS)
	@IDP_TOP=$(CURDIR) IDP_BUILD=$(CURDIR)/$(B) IDP_BIN=$(CURDIR)/$(B)/bin IDP_VARIANT=$(VARIANT) \
		ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:verify_asan_link_order=0} \
		tests/stress/stress.sh

demo: deps
	@$(MAKE) --no-print-directory VARIANT=plain programs
	@samples/demo.sh build/plain/bin

# make install: programs, man pages, systemd units (PREFIX's paths), the udev
# rule, the documentation, and a default idprovd.conf (every key commented;
# written only if absent: an administrator's file is never replaced).
SYSCONFDIR   ?= /etc
UDEVRULESDIR ?= $(PREFIX)/lib/udev/rules.d
DOCDIR       ?= $(PREFIX)/share/doc/idprov
DOC_FILES    := README.md $(wildcard docs/*.md) $(wildcard docs/images/*.png)
SPEC_FILES   := $(wildcard formats/*.md)
install: programs
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	$(if $(PROGS),install -m 0755 $(PROG_BINS) $(DESTDIR)$(PREFIX)/bin/)
	@for m in $(MANPAGES); do \
		s=$${m##*.}; echo install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; \
		install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	@for u in $(UNITS); do \
		echo "install $$u -> $(DESTDIR)$(PREFIX)/lib/systemd/system/ (bin: $(PREFIX)/bin)"; \
		sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' $$u >$(DESTDIR)$(PREFIX)/lib/systemd/system/$$(basename $$u) && \
		chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/$$(basename $$u) || exit 1; done
	install -d $(DESTDIR)$(UDEVRULESDIR)
	install -m 0644 samples/60-idprov-station.rules $(DESTDIR)$(UDEVRULESDIR)/
	install -d $(DESTDIR)$(DOCDIR)/docs/images $(DESTDIR)$(DOCDIR)/formats $(DESTDIR)$(DOCDIR)/examples
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 $(filter docs/%.md,$(DOC_FILES)) $(DESTDIR)$(DOCDIR)/docs/
	$(if $(filter %.png,$(DOC_FILES)),install -m 0644 $(filter %.png,$(DOC_FILES)) $(DESTDIR)$(DOCDIR)/docs/images/)
	install -m 0644 $(SPEC_FILES) $(DESTDIR)$(DOCDIR)/formats/
	install -m 0644 samples/idprovd.conf samples/60-idprov-station.rules $(UNITS) $(DESTDIR)$(DOCDIR)/examples/
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/idprov
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/idprov/idprovd.conf ]; then \
		echo "keep $(DESTDIR)$(SYSCONFDIR)/idprov/idprovd.conf (exists; the default is in $(DOCDIR)/examples)"; \
	else echo install -m 0644 samples/idprovd.conf $(DESTDIR)$(SYSCONFDIR)/idprov/; \
		install -m 0644 samples/idprovd.conf $(DESTDIR)$(SYSCONFDIR)/idprov/; fi

clean:
	rm -rf build

# make print-VAR shows a variable (used by tests/integration/build/deps.sh).
print-%:
	@echo $($*)
