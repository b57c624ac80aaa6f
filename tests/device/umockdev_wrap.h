/*
 * umockdev_wrap.h - for the test tools that build a umockdev testbed
 * (tests/tools/serial-rig.c, usb-rig.c): run the program again under
 * umockdev-wrapper, which preloads libumockdev-preload, unless it already
 * runs under it. Test-only.
 */
#ifndef IDP_TESTS_DEVICE_UMOCKDEV_WRAP_H
#define IDP_TESTS_DEVICE_UMOCKDEV_WRAP_H

/* Returns when the preload is in place; otherwise execs
 * "umockdev-wrapper argv..." and, when that fails, prints why (naming
 * prog) and exits 3. */
void tdev_umockdev_wrap(const char *prog, int argc, char **argv);

#endif /* IDP_TESTS_DEVICE_UMOCKDEV_WRAP_H */
