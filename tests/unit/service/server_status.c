/*
 * ServerInfo's per-storage status cache (src/service/server_status.c): a
 * repeated call is answered without reading the storage, and each change
 * the kernel reports (the directory's mode, its rename, a rewritten
 * .gitaly-metadata) is seen by the very next call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "git/storage.h"
#include "service/server_internal.h"
#include "../support/shell.h"

static char tmp[] = "/tmp/svc-status-XXXXXX";
static char dir[128], meta[256];

static void write_id(const char *id)
{
	char part[512];
	FILE *f;

	/* written aside and renamed over, as storage_write_metadata does */
	snprintf(part, sizeof(part), "%s.tmp", meta);
	f = fopen(part, "w");
	assert_non_null(f);
	fprintf(f, "{\"gitaly_filesystem_id\":\"%s\"}\n", id);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(part, meta), 0);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	snprintf(dir, sizeof(dir), "%s/storage", tmp);
	snprintf(meta, sizeof(meta), "%s/.gitaly-metadata", dir);
	if (mkdir(dir, 0755) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return test_shell(NULL, 0, 0, "rm -rf '%s'", tmp) == 0 ? 0 : -1;
}

/* One round as ServerInfo does it; returns the number of storage reads. */
static uint64_t status(struct server_storage_status *st)
{
	uint64_t h0, r0, h1, r1;

	server_storage_status_counts(&h0, &r0);
	server_storage_status_check();
	server_storage_status(dir, st);
	server_storage_status_counts(&h1, &r1);
	assert_int_equal((h1 - h0) + (r1 - r0), 1);
	return r1 - r0;
}

static void test_cache_and_invalidation(void **state)
{
	struct server_storage_status st;
	char gone[300];

	(void)state;
	write_id("4f5c1b4e-1111-4222-8333-944455556666");

	/* first call reads, the next one is served from the cache */
	assert_int_equal(status(&st), 1);
	assert_true(st.readable);
	assert_true(st.writeable);
	assert_string_equal(st.fs_type, storage_fs_type(dir));
	assert_string_equal(st.fsid, "4f5c1b4e-1111-4222-8333-944455556666");
	server_storage_status_release(&st);
	assert_int_equal(status(&st), 0);
	assert_string_equal(st.fsid, "4f5c1b4e-1111-4222-8333-944455556666");
	server_storage_status_release(&st);

	/* a new .gitaly-metadata: the next call reads it */
	write_id("4f5c1b4e-2222-4222-8333-944455556666");
	assert_int_equal(status(&st), 1);
	assert_string_equal(st.fsid, "4f5c1b4e-2222-4222-8333-944455556666");
	server_storage_status_release(&st);
	assert_int_equal(status(&st), 0);
	server_storage_status_release(&st);

	/* a chmod of the directory */
	assert_int_equal(chmod(dir, 0555), 0);
	assert_int_equal(status(&st), 1);
	if (geteuid() != 0)
		assert_false(st.writeable);
	server_storage_status_release(&st);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(status(&st), 1);
	assert_true(st.writeable);
	server_storage_status_release(&st);

	/* renamed away: not readable, and nothing cached while it is gone */
	snprintf(gone, sizeof(gone), "%s.gone", dir);
	assert_int_equal(rename(dir, gone), 0);
	assert_int_equal(status(&st), 1);
	assert_false(st.readable);
	assert_false(st.writeable);
	assert_null(st.fsid);
	assert_non_null(st.fsid_error);
	server_storage_status_release(&st);
	assert_int_equal(status(&st), 1);
	server_storage_status_release(&st);

	/* back: read again, then cached again */
	assert_int_equal(rename(gone, dir), 0);
	assert_int_equal(status(&st), 1);
	assert_true(st.readable);
	assert_string_equal(st.fsid, "4f5c1b4e-2222-4222-8333-944455556666");
	server_storage_status_release(&st);
	assert_int_equal(status(&st), 0);
	server_storage_status_release(&st);
}

static void test_entry_expires(void **state)
{
	struct server_storage_status st;

	(void)state;
	write_id("4f5c1b4e-3333-4222-8333-944455556666");
	assert_int_equal(status(&st), 1);
	server_storage_status_release(&st);
	assert_int_equal(status(&st), 0);
	server_storage_status_release(&st);
	usleep(1100 * 1000);
	assert_int_equal(status(&st), 1);
	server_storage_status_release(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_and_invalidation),
		cmocka_unit_test(test_entry_expires),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
