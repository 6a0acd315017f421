/*
 * Service helpers: byte streams cut into 128 KiB chunks (and nothing sent
 * for empty input), directory sizes that count files and symlinks but not
 * directories, recursive removal, Go-style quoting, request repository
 * conversion.
 */
#include <fcntl.h>
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

#include "base/strbuf.h"
#include "service/util.h"

struct collected {
	size_t chunks;
	size_t total;
	size_t max_chunk;
	uint8_t *data;
};

static int collect(struct rpc_call *call, const uint8_t *data, size_t len, void *ctx,
		   struct error *err)
{
	struct collected *c = ctx;

	(void)call;
	(void)err;
	c->chunks++;
	memcpy(c->data + c->total, data, len);
	c->total += len;
	if (len > c->max_chunk)
		c->max_chunk = len;
	return 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void stream_file_of(size_t size, size_t want_chunks)
{
	char path[] = "/tmp/svc-util-XXXXXX";
	int fd = mkstemp(path);
	uint8_t *data = malloc(size + 1);
	struct collected c = { 0 };
	struct error err = ERROR_INIT;

	assert_true(fd >= 0);
	for (size_t i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	c.data = malloc(size + 1);
	assert_int_equal(service_stream_fd(NULL, fd, collect, &c, &err), 0);
	assert_int_equal(c.chunks, want_chunks);
	assert_int_equal(c.total, size);
	assert_true(c.max_chunk <= SERVICE_CHUNK_SIZE);
	assert_memory_equal(c.data, data, size);
	close(fd);
	unlink(path);
	free(c.data);
	free(data);
}

static void test_stream_chunks(void **state)
{
	(void)state;
	stream_file_of(0, 0);
	stream_file_of(10, 1);
	stream_file_of(SERVICE_CHUNK_SIZE, 1);
	stream_file_of(SERVICE_CHUNK_SIZE * 2 + 5, 3);
}

static void test_dir_size_and_remove(void **state)
{
	char tmp[] = "/tmp/svc-util-XXXXXX";
	char path[256];
	uint64_t size = 1;
	struct error err = ERROR_INIT;
	char buf[1000] = { 0 };

	(void)state;
	assert_non_null(mkdtemp(tmp));
	snprintf(path, sizeof(path), "%s/a/b/c", tmp);
	assert_int_equal(service_mkdir_all(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/a/file", tmp);
	write_file(path, buf, 1000);
	snprintf(path, sizeof(path), "%s/a/b/c/file", tmp);
	write_file(path, buf, 234);
	snprintf(path, sizeof(path), "%s/a/link", tmp);
	/* lstat size of a symlink is its target's length (11 bytes). */
	assert_int_equal(symlink("/nonexist/x", path), 0);

	assert_int_equal(service_dir_size(tmp, &size, &err), 0);
	assert_int_equal(size, 1000 + 234 + 11);
	snprintf(path, sizeof(path), "%s/missing", tmp);
	assert_int_equal(service_dir_size(path, &size, &err), 0);
	assert_int_equal(size, 0);

	assert_int_equal(service_remove_all(tmp), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(service_remove_all(tmp), 0);
}

static void test_go_quote(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	assert_int_equal(service_go_quote(&sb, "fatal: \"x\"\n\tok\\\x01", 16), 0);
	assert_string_equal(sb.buf, "\"fatal: \\\"x\\\"\\n\\tok\\\\\\x01\"");
	strbuf_release(&sb);
}

static void test_repo_ref(void **state)
{
	Gitaly__Repository repo = GITALY__REPOSITORY__INIT;
	struct repo_ref ref;
	const struct repo_ref *r;

	(void)state;
	repo.storage_name = "default";
	repo.relative_path = "a.git";
	assert_null(service_repo_ref(NULL, &ref));
	r = service_repo_ref(&repo, &ref);
	assert_ptr_equal(r, &ref);
	assert_string_equal(r->storage_name, "default");
	assert_string_equal(r->relative_path, "a.git");
	assert_int_equal(r->n_alternates, 0);
	assert_true(service_has_nul("a\0b", 3));
	assert_false(service_has_nul("ab", 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_chunks),
		cmocka_unit_test(test_dir_size_and_remove),
		cmocka_unit_test(test_go_quote),
		cmocka_unit_test(test_repo_ref),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
