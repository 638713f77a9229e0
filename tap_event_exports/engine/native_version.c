/*
 * What the Python side checks before it uses the library built from the *.c files here: the
 * interface version, and the SHA-256 of the sources as they were compiled (set by the build),
 * so that a library older than its sources is not used.
 */
#include <stdint.h>

#define TAP_NATIVE_ABI 1
#ifndef TAP_NATIVE_SOURCE
#define TAP_NATIVE_SOURCE ""
#endif

int64_t tap_native_abi(void) { return TAP_NATIVE_ABI; }

const char *tap_native_source(void) { return TAP_NATIVE_SOURCE; }
