# tests/ - every tests/unit/test_*.c is a Check binary of pure unit tests;
# every tests/integration/<component>/test_*.c a Check binary that starts TLS
# servers, opens SQLite files, kills processes or drives ptys; every
# tests/bench/bench_*.c a benchmark; every tests/fuzz/fuzz_*.c a libFuzzer
# target whose project sources are listed as fuzz_<name>_SRCS (default: all of
# formats/). Every tests/tools/*.c is a helper program for the shell tests,
# built as $(B)/tools/<name>.
UNIT_TESTS += $(wildcard tests/unit/test_*.c)
INTEG_TESTS += $(wildcard tests/integration/*/test_*.c)
BENCHES    += $(wildcard tests/bench/bench_*.c)
FUZZERS    += $(wildcard tests/fuzz/fuzz_*.c)
FORMATS_SRCS = $(filter-out %_main.c,$(wildcard formats/*.c))
# server/config.c reads dnssd-backend (fio_dnssd_backend_parse): formats/io/dnssd
# and what it links (the embedded backend, its renamed libavahi-core copy).
fuzz_config_SRCS = server/config.c server/rules.c formats/io/dnssd.c formats/io/dnssd_core.c \
                   formats/io/log.c $(B)/lib/libidprov-avahicore.a $(FORMATS_SRCS)
$(foreach f,$(wildcard tests/fuzz/fuzz_*.c),$(eval $(basename $(notdir $(f)))_SRCS ?= $$(FORMATS_SRCS)))
TEST_TOOLS += $(wildcard tests/tools/*.c)

# The test device side of the wire protocol (tests/device/wire_device.h): a
# library the unit tests and the tools link (tests/tools/wire-device.c runs
# it on a tty for the shell tests).
PROJECT_LIBS += testdev
LIBS_testdev = tests/device/wire_device.c tests/device/umockdev_wrap.c

# tests/tools/serial-rig.c: libserialport on a USB serial adapter that
# umockdev presents, a pty behind it running the test device
# (tests/integration/station/serial.sh).
serial-rig_PKGS = umockdev-1.0

# tests/tools/usb-rig.c: USB devices plugged into and out of a umockdev
# testbed, their usbdevfs ioctls answered in the rig, the test device behind
# the bulk endpoints (tests/integration/station/usb.sh).
usb-rig_PKGS = umockdev-1.0

# tests/fuzz/fuzz_session.c: the web UI's session check on a raw head.
fuzz_session_SRCS = server/session.c server/head.c $(FORMATS_SRCS)

# tests/fuzz/fuzz_head.c: the connection filter's request-head parser.
fuzz_head_SRCS = server/head.c $(FORMATS_SRCS)
