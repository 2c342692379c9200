# umlk: one static binary (musl + zlib) holding every applet.
#
#   make            build/umlk, static, musl
#   make kernel     build/linux, the UML kernel (cached; see kernel/)
#   make release    build/release/umlk: umlk with the kernel embedded
#   make rootfs     the guest images the tests boot, under build/rootfs (HACKING.md)
#   make demo       build all that, then boot a guest and show it
#   make check      every test (built in parallel first): musl and ASan/UBSan builds
#   make fuzz       libFuzzer targets under build/fuzz/ (clang)
#   make rootfs-desktop  build/rootfs/xfce.iso, the XFce live ISO of bench/desktop.sh
#   make bench      benchmarks against the peer tools (builds the desktop too)
#   make clean

BUILD  ?= build
UMLK_CACHE ?= $(HOME)/.cache/umlk-build
export UMLK_CACHE

MUSL_CC ?= musl-gcc
CC_SAN  ?= gcc
CLANG   ?= clang
OPT     ?= -O2
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1)

WARN    = -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -Ilibk
DEFS    = -DUMLK_VERSION='"$(VERSION)"'

# libk's folders, bottom up (HACKING.md draws them): a folder uses only
# those before it.
LAYERS = core image block merge share remote vhost net guest
LIBK = $(foreach d,$(LAYERS),$(sort $(wildcard libk/$(d)/*.c)))

APPLETS = $(sort $(wildcard applets/*.c))
HEADERS = $(wildcard libk/*/*.h applets/*.h)
SRCS = $(LIBK) $(APPLETS)

ZLIB = $(BUILD)/zlib/lib/libz.a

MUSL_OBJS = $(SRCS:%.c=$(BUILD)/musl/%.o)
SAN_OBJS  = $(SRCS:%.c=$(BUILD)/san/%.o)
SANFLAGS  = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all kernel release rootfs rootfs-desktop demo check check-deps fuzz bench clean
all: $(BUILD)/umlk

# The kernel build is cached by kernel/build.sh (keyed by source version,
# fragment and patches), so running it every time costs a copy at most.
# Its own make runs with -j as many CPUs, not in this make's job server.
KERNEL_INPUTS = kernel/build.sh kernel/config.fragment kernel/make-tree.sh $(wildcard kernel/patches/*.patch)
kernel: $(BUILD)/linux
$(BUILD)/linux: $(KERNEL_INPUTS)
	MAKEFLAGS= MAKELEVEL= sh kernel/build.sh $@

release: $(BUILD)/release/umlk
$(BUILD)/release/umlk: $(BUILD)/umlk $(BUILD)/linux
	@mkdir -p $(dir $@)
	$(BUILD)/umlk kernel-info --attach $(BUILD)/linux --release "$$(cat $(BUILD)/linux.release)" \
		-o $@ $(BUILD)/umlk
	@echo "release: $@ ($$(stat -c %s $@) bytes)"

# Guest images: the tiny busybox one, and the Debian mini live CD (its
# debootstrap part is cached; see rootfs/debian.sh).
INITS = $(BUILD)/rootfs/trixie-systemd.sqfs $(BUILD)/rootfs/bookworm-sysv.sqfs
ROOTFS = $(BUILD)/rootfs/tiny.iso $(BUILD)/rootfs/debian.iso $(BUILD)/rootfs/live.iso $(INITS)
rootfs: $(ROOTFS)
	@for f in $(ROOTFS); do [ -s "$$f" ] || { echo "make: $$f was not made (its recipe ended without it)" >&2; exit 1; }; done
$(BUILD)/rootfs/tiny.iso: rootfs/tiny.sh $(BUILD)/umlk
	sh rootfs/tiny.sh $(BUILD)/umlk $(BUILD)/rootfs
$(BUILD)/rootfs/debian.iso: rootfs/debian.sh $(BUILD)/umlk
	sh rootfs/debian.sh $(BUILD)/umlk $(BUILD)/rootfs
# A real Debian Live ISO from live-build (cached the same way; see rootfs/live.sh).
$(BUILD)/rootfs/live.iso: rootfs/live.sh rootfs/lb.sh
	sh rootfs/live.sh $(BUILD)/rootfs
# Roots for the guest's own init: trixie with systemd, bookworm with
# sysvinit (cached the same way; see rootfs/inits.sh).
$(BUILD)/rootfs/%.sqfs: rootfs/inits.sh
	sh rootfs/inits.sh $(BUILD)/rootfs $*

demo: $(BUILD)/release/umlk $(BUILD)/rootfs/tiny.iso
	sh release/demo.sh $(BUILD)/release/umlk $(BUILD)/rootfs/tiny.iso

$(ZLIB): libk/zlib-musl.sh
	sh libk/zlib-musl.sh $(BUILD)/zlib

$(BUILD)/musl/%.o: %.c $(HEADERS) $(ZLIB)
	@mkdir -p $(dir $@)
	$(MUSL_CC) $(WARN) $(OPT) $(DEFS) -I$(BUILD)/zlib/include -c -o $@ $<

$(BUILD)/umlk: $(MUSL_OBJS) $(ZLIB)
	$(MUSL_CC) -static -o $@ $(MUSL_OBJS) $(ZLIB) -lpthread
	strip $@

# The sanitizer flavour: system compiler and glibc (sanitizers need them).
$(BUILD)/san/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC_SAN) $(WARN) $(SANFLAGS) $(DEFS) -c -o $@ $<

$(BUILD)/san/umlk: $(SAN_OBJS)
	$(CC_SAN) $(SANFLAGS) -o $@ $(SAN_OBJS) -lz -lpthread

# The sanitizer flavour's libk objects also make the unit tests and the
# test tools; the fuzzers get libk compiled once with clang's coverage.
SAN_LIBK  = $(LIBK:%.c=$(BUILD)/san/%.o)
FUZZ_LIBK = $(LIBK:%.c=$(BUILD)/fuzzlib/%.o)
FUZZFLAGS = $(WARN) -g -O1 -fsanitize=address,undefined -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION

$(BUILD)/unit: test/unit/unit.c $(SAN_LIBK) $(HEADERS)
	$(CC_SAN) $(WARN) $(SANFLAGS) -o $@ test/unit/unit.c $(SAN_LIBK) -lz -lpthread

# Test tools, with the sanitizers on.
$(BUILD)/swprobe: test/tools/swprobe.c $(SAN_LIBK) $(HEADERS)
	$(CC_SAN) $(WARN) $(SANFLAGS) -o $@ test/tools/swprobe.c $(SAN_LIBK) -lz -lpthread

# The jail's probe: a static program that takes the kernel's place and
# tries to get out (test/jail.test).
$(BUILD)/jailprobe: test/tools/jailprobe.c $(ZLIB)
	$(MUSL_CC) $(WARN) $(OPT) -static -o $@ test/tools/jailprobe.c

FUZZERS = $(patsubst test/fuzz/%.c,$(BUILD)/fuzz/%,$(sort $(wildcard test/fuzz/fuzz_*.c)))
fuzz: $(FUZZERS)
$(BUILD)/fuzzlib/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
# (Kept: reached only through the pattern rule, make would delete them
# as intermediate files after each build.)
.SECONDARY: $(FUZZ_LIBK)
$(BUILD)/fuzz/%: test/fuzz/%.c $(FUZZ_LIBK) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIBK) -lz -lpthread

# Everything the tests use, built in parallel (the kernel and the guest
# images take minutes each, mostly waiting on the mirror and the disk),
# then each target checked to exist: a recipe that ends 0 without its
# file fails here, not in a test much later.
JOBS ?= 6
CHECK_DEPS = $(BUILD)/umlk $(BUILD)/san/umlk $(BUILD)/unit $(BUILD)/swprobe $(BUILD)/jailprobe $(FUZZERS) $(BUILD)/release/umlk \
	     $(BUILD)/rootfs/tiny.iso $(BUILD)/rootfs/debian.iso $(BUILD)/rootfs/live.iso $(INITS)
check-deps:
	$(MAKE) -j$(JOBS) $(CHECK_DEPS)
	@for f in $(CHECK_DEPS); do [ -s "$$f" ] || { echo "make: $$f was not made (its recipe ended without it)" >&2; exit 1; }; done

check: check-deps
	sh test/run.sh

# The XFce desktop (bench/desktop.sh): too big for make check's time.
rootfs-desktop: $(BUILD)/rootfs/xfce.iso
$(BUILD)/rootfs/xfce.iso: rootfs/xfce.sh rootfs/lb.sh $(wildcard rootfs/xfce/*/*/*)
	sh rootfs/xfce.sh $(BUILD)/rootfs

bench: $(BUILD)/umlk $(BUILD)/release/umlk $(BUILD)/rootfs/debian.iso
	$(MAKE) rootfs-desktop || echo "make: no desktop image (rootfs/xfce.sh needs root once): bench/desktop.sh skips"
	sh bench/run.sh

clean:
	rm -rf $(BUILD)
