# umlk: one static binary (musl + zlib) holding every applet.
#
#   make            build/umlk, static, musl
#   make kernel     build/linux, the UML kernel (cached; see kernel/)
#   make release    build/release/umlk: umlk with the kernel embedded
#   make rootfs     guest images under build/rootfs (tiny, and the Debian mini live CD)
#   make demo       build all that, then boot a guest and show it
#   make check      every test, on the musl build and on an ASan/UBSan build
#   make fuzz       libFuzzer targets under build/fuzz/ (clang)
#   make bench      benchmarks against the peer tools
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

LIBK = libk/core/args.c libk/core/daemon.c libk/core/err.c libk/core/pipeline.c libk/core/pool.c libk/core/progress.c libk/core/sha256.c libk/core/sys.c libk/core/xio.c \
       libk/image/cloop.c libk/image/cloop_extract.c libk/image/cloop_make.c libk/image/cow.c libk/image/cowmerge.c libk/image/cpio.c libk/image/fdiff.c libk/image/iso9660.c libk/image/live.c libk/image/mkext4.c libk/image/upper.c \
       libk/net/dhcp.c libk/net/dhcpc.c libk/net/dhcpd.c libk/net/net.c libk/net/netif.c libk/net/switch.c libk/net/switchproto.c libk/net/tcpgw.c libk/net/vnet.c \
       libk/block/bsrc.c libk/block/bsrc_cloop.c libk/block/bsrc_cow.c libk/block/image.c \
       libk/remote/http.c libk/remote/index.c libk/remote/remote.c \
       libk/vhost/vblk.c libk/vhost/vfs.c libk/vhost/vhost.c libk/share/fuse.c \
       libk/guest/boot.c libk/guest/cookie.c libk/guest/guest.c libk/guest/mconsole.c libk/guest/payload.c libk/guest/upperdiff.c libk/guest/xnest.c

APPLETS = applets/main.c applets/boot.c applets/cow_merge.c applets/dhcpd.c applets/extract_cloop.c applets/index.c applets/init.c applets/initramfs.c \
          applets/kernel_info.c applets/linux.c applets/make_cloop.c applets/umlswitch.c applets/xnest_launch.c
HEADERS = $(wildcard libk/*/*.h applets/*.h)
SRCS = $(LIBK) $(APPLETS)

ZLIB = $(BUILD)/zlib/lib/libz.a

MUSL_OBJS = $(SRCS:%.c=$(BUILD)/musl/%.o)
SAN_OBJS  = $(SRCS:%.c=$(BUILD)/san/%.o)
SANFLAGS  = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all kernel release rootfs demo check fuzz bench clean
all: $(BUILD)/umlk

# The kernel build is cached by kernel/build.sh (keyed by source version,
# fragment and patches), so running it every time costs a copy at most.
KERNEL_INPUTS = kernel/build.sh kernel/config.fragment
kernel: $(BUILD)/linux
$(BUILD)/linux: $(KERNEL_INPUTS)
	sh kernel/build.sh $@

release: $(BUILD)/release/umlk
$(BUILD)/release/umlk: $(BUILD)/umlk $(BUILD)/linux
	@mkdir -p $(dir $@)
	$(BUILD)/umlk kernel-info --attach $(BUILD)/linux --release "$$(cat $(BUILD)/linux.release)" \
		-o $@ $(BUILD)/umlk
	@echo "release: $@ ($$(stat -c %s $@) bytes)"

# Guest images: the tiny busybox one, and the Debian mini live CD (its
# debootstrap part is cached; see rootfs/debian.sh).
INITS = $(BUILD)/rootfs/trixie-systemd.sqfs $(BUILD)/rootfs/bookworm-sysv.sqfs
rootfs: $(BUILD)/rootfs/tiny.iso $(BUILD)/rootfs/debian.iso $(BUILD)/rootfs/live.iso $(INITS)
$(BUILD)/rootfs/tiny.iso: rootfs/tiny.sh $(BUILD)/umlk
	sh rootfs/tiny.sh $(BUILD)/umlk $(BUILD)/rootfs
$(BUILD)/rootfs/debian.iso: rootfs/debian.sh $(BUILD)/umlk
	sh rootfs/debian.sh $(BUILD)/umlk $(BUILD)/rootfs
# A real Debian Live ISO from live-build (cached the same way; see rootfs/live.sh).
$(BUILD)/rootfs/live.iso: rootfs/live.sh
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

$(BUILD)/unit: test/unit/unit.c $(filter-out applets/%,$(SRCS)) $(HEADERS)
	$(CC_SAN) $(WARN) $(SANFLAGS) -o $@ test/unit/unit.c $(LIBK) -lz -lpthread

# Test tools, with the sanitizers on.
$(BUILD)/swprobe: test/tools/swprobe.c $(LIBK) $(HEADERS)
	$(CC_SAN) $(WARN) $(SANFLAGS) -o $@ test/tools/swprobe.c $(LIBK) -lz -lpthread

FUZZERS = $(BUILD)/fuzz/fuzz_cloop $(BUILD)/fuzz/fuzz_cow $(BUILD)/fuzz/fuzz_dhcp $(BUILD)/fuzz/fuzz_diff \
          $(BUILD)/fuzz/fuzz_iso $(BUILD)/fuzz/fuzz_switch $(BUILD)/fuzz/fuzz_tcpgw \
          $(BUILD)/fuzz/fuzz_vhost $(BUILD)/fuzz/fuzz_virtq $(BUILD)/fuzz/fuzz_fuse \
          $(BUILD)/fuzz/fuzz_vnet $(BUILD)/fuzz/fuzz_live $(BUILD)/fuzz/fuzz_http $(BUILD)/fuzz/fuzz_index $(BUILD)/fuzz/fuzz_fdiff
fuzz: $(FUZZERS)
$(BUILD)/fuzz/%: test/fuzz/%.c $(LIBK) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CLANG) $(WARN) -g -O1 -fsanitize=fuzzer,address,undefined -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION \
		-o $@ $< $(LIBK) -lz -lpthread

check: $(BUILD)/umlk $(BUILD)/san/umlk $(BUILD)/unit $(BUILD)/swprobe $(FUZZERS) $(BUILD)/release/umlk \
       $(BUILD)/rootfs/debian.iso $(BUILD)/rootfs/live.iso $(INITS)
	sh test/run.sh

bench: $(BUILD)/umlk $(BUILD)/release/umlk $(BUILD)/rootfs/debian.iso
	sh bench/run.sh

clean:
	rm -rf $(BUILD)
