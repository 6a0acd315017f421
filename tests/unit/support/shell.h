/*
 * Test support: run a shell command line and capture its standard output.
 * Linked into every unit-test binary (tests/unit/support/ is built by the
 * Makefile for all of them).
 */
#ifndef TESTS_SUPPORT_SHELL_H
#define TESTS_SUPPORT_SHELL_H

#include <stddef.h>

/*
 * Runs the printf-formatted command with /bin/sh -c. When out is non-NULL,
 * up to cap - 1 bytes of its stdout are stored there, NUL-terminated (the
 * rest is read and dropped); with trim_newlines, trailing newlines are
 * removed. Returns the exit status, or -1 when the command could not run.
 */
int test_shell(char *out, size_t cap, int trim_newlines, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
