/*
 * Our loose-object reader (src/git/odb_loose.c) through repo_cache handles:
 * truncated loose objects (at every length for a commit, at chunk edges for
 * a large blob), flipped bytes, trailing garbage and malformed headers all
 * give an error, and every such read runs in a child process under alarm()
 * so that a hang (libgit2 1.5.1's own loose reader spins forever on a
 * truncated file) fails the test instead of blocking it. Also: good reads of
 * small, empty and multi-chunk objects, prefix reads, foreach, objects
 * written after the handle was opened, relative alternates, and a truncated
 * pack file answering an error or "missing", never hanging.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/gitsh.h"

#include "base/error.h"
#include "git/odb_loose.h"
#include "git/repo_cache.h"

/* A read that has not returned after this long is a hang. */
#define READ_TIMEOUT_S 5

static char tmp[64];

/* Runs a shell snippet in tmp (tests/unit/support/gitsh.h); asserts success. */
#define sh(...) TEST_GIT_SH(tmp, __VA_ARGS__)

static char *path_of(const char *fmt, ...)
{
	char *rel = NULL, *p = NULL;
	va_list ap;

	va_start(ap, fmt);
	assert_true(vasprintf(&rel, fmt, ap) > 0);
	va_end(ap);
	assert_true(asprintf(&p, "%s/%s", tmp, rel) > 0);
	free(rel);
	return p;
}

/* Whole content of a file under tmp; *len gets its size. */
static unsigned char *slurp(const char *rel, size_t *len)
{
	char *p = path_of("%s", rel);
	FILE *f = fopen(p, "rb");
	unsigned char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	free(p);
	*len = (size_t)n;
	return buf;
}

/* The first line of a file under tmp (an object id written by the shell). */
static void read_oid(const char *rel, char hex[GIT_OID_HEXSZ + 1])
{
	size_t n;
	unsigned char *buf = slurp(rel, &n);

	assert_true(n >= GIT_OID_HEXSZ);
	memcpy(hex, buf, GIT_OID_HEXSZ);
	hex[GIT_OID_HEXSZ] = '\0';
	free(buf);
}

static char *object_path(const char *repo, const char *hex)
{
	return path_of("%s/objects/%.2s/%s", repo, hex, hex + 2);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd;

	chmod(path, 0644);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

enum op { OP_READ, OP_HEADER, OP_LOOKUP, OP_PREFIX };

/* Outcome of one read done in the child. */
enum outcome { RD_ERROR = 10, RD_OK = 11, RD_MISSING = 12, RD_HANG = 13 };

static int do_op(git_repository *repo, const char *hex, enum op op)
{
	git_odb *odb = NULL;
	git_odb_object *obj = NULL;
	git_object *o = NULL;
	git_object_t type;
	git_oid oid;
	size_t len;
	int rc;

	assert_int_equal(git_oid_fromstrn(&oid, hex, op == OP_PREFIX ? 10 : GIT_OID_HEXSZ), 0);
	assert_int_equal(git_repository_odb(&odb, repo), 0);
	switch (op) {
	case OP_READ:
		rc = git_odb_read(&obj, odb, &oid);
		break;
	case OP_HEADER:
		rc = git_odb_read_header(&len, &type, odb, &oid);
		break;
	case OP_PREFIX:
		rc = git_odb_read_prefix(&obj, odb, &oid, 10);
		break;
	default:
		rc = git_object_lookup(&o, repo, &oid, GIT_OBJECT_ANY);
		break;
	}
	git_odb_object_free(obj);
	git_object_free(o);
	git_odb_free(odb);
	if (rc == GIT_ENOTFOUND)
		return RD_MISSING;
	return rc < 0 ? RD_ERROR : RD_OK;
}

/*
 * Reads hex from repo (a path under tmp) in a child process through a fresh
 * repo_cache handle; a child still busy after READ_TIMEOUT_S is a hang.
 */
static enum outcome read_in_child(const char *repo, const char *hex, enum op op)
{
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct error err = ERROR_INIT;
		git_repository *r = NULL;
		char *p = path_of("%s", repo);

		alarm(READ_TIMEOUT_S);
		if (repo_cache_get(p, NULL, NULL, &r, &err) < 0)
			_exit(1);
		_exit(do_op(r, hex, op));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		return RD_HANG;
	assert_true(WIFEXITED(status));
	assert_in_range(WEXITSTATUS(status), RD_ERROR, RD_MISSING);
	return (enum outcome)WEXITSTATUS(status);
}

static const char *outcome_name(enum outcome o)
{
	switch (o) {
	case RD_ERROR:
		return "error";
	case RD_OK:
		return "ok";
	case RD_MISSING:
		return "missing";
	default:
		return "hang";
	}
}

#define assert_outcome(repo, hex, op, want)                                                 \
	do {                                                                                \
		enum outcome got_ = read_in_child(repo, hex, op);                           \
		if (got_ != (want))                                                         \
			fail_msg("%s op %d: got %s, want %s", hex, (int)(op),               \
				 outcome_name(got_), outcome_name(want));                   \
	} while (0)

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/odbloose-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	repo_cache_configure(100);
	repo_cache_set_ttl_ms(-1);
	sh("git init -q --bare -b main r.git && git init -q -b main w && cd w && "
	   "echo one > f && git add f && git commit -q -m one && git push -q ../r.git main && "
	   "git rev-parse HEAD > ../commit.oid && git rev-parse HEAD:f > ../blob.oid && "
	   "git rev-parse HEAD^{tree} > ../tree.oid && "
	   "head -c 300000 /dev/urandom | base64 > big && "
	   "git --git-dir=../r.git hash-object -w big > ../big.oid && "
	   "git --git-dir=../r.git hash-object -w /dev/null > ../empty.oid");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	repo_cache_clear();
	sh("rm -rf '%s'", tmp);
	return 0;
}

static void test_good_reads(void **state)
{
	struct error err = ERROR_INIT;
	char commit[41], blob[41], big[41], empty[41];
	git_repository *repo = NULL;
	git_odb *odb = NULL;
	git_odb_object *obj = NULL;
	git_object_t type;
	git_oid oid;
	size_t len, big_len;
	unsigned char *want;
	char *p = path_of("r.git");

	(void)state;
	read_oid("commit.oid", commit);
	read_oid("blob.oid", blob);
	read_oid("big.oid", big);
	read_oid("empty.oid", empty);
	assert_int_equal(repo_cache_get(p, NULL, NULL, &repo, &err), 0);
	assert_int_equal(git_repository_odb(&odb, repo), 0);

	git_oid_fromstr(&oid, blob);
	assert_int_equal(git_odb_read(&obj, odb, &oid), 0);
	assert_int_equal(git_odb_object_size(obj), 4);
	assert_memory_equal(git_odb_object_data(obj), "one\n", 4);
	assert_int_equal(git_odb_object_type(obj), GIT_OBJECT_BLOB);
	git_odb_object_free(obj);

	/* Several 64 KiB input chunks. */
	want = slurp("w/big", &big_len);
	git_oid_fromstr(&oid, big);
	assert_int_equal(git_odb_read_header(&len, &type, odb, &oid), 0);
	assert_int_equal(len, big_len);
	assert_int_equal(type, GIT_OBJECT_BLOB);
	assert_int_equal(git_odb_read(&obj, odb, &oid), 0);
	assert_int_equal(git_odb_object_size(obj), big_len);
	assert_memory_equal(git_odb_object_data(obj), want, big_len);
	git_odb_object_free(obj);
	free(want);

	git_oid_fromstr(&oid, empty);
	assert_int_equal(git_odb_read(&obj, odb, &oid), 0);
	assert_int_equal(git_odb_object_size(obj), 0);
	git_odb_object_free(obj);

	/* Abbreviated ids go through read_prefix. */
	git_oid_fromstrn(&oid, commit, 12);
	assert_int_equal(git_odb_read_prefix(&obj, odb, &oid, 12), 0);
	assert_int_equal(git_odb_object_type(obj), GIT_OBJECT_COMMIT);
	assert_string_equal(git_oid_tostr_s(git_odb_object_id(obj)), commit);
	git_odb_object_free(obj);

	git_oid_fromstr(&oid, commit);
	assert_true(git_odb_exists(odb, &oid));

	git_odb_free(odb);
	repo_cache_put(repo);
	free(p);
}

static int count_cb(const git_oid *id, void *payload)
{
	(void)id;
	(*(int *)payload)++;
	return 0;
}

static void test_foreach_and_new_objects_seen(void **state)
{
	struct error err = ERROR_INIT;
	git_repository *repo = NULL;
	git_odb *odb = NULL;
	git_odb_object *obj = NULL;
	git_oid oid;
	char later[41];
	int n = 0;
	char *p = path_of("r.git");

	(void)state;
	assert_int_equal(repo_cache_get(p, NULL, NULL, &repo, &err), 0);
	assert_int_equal(git_repository_odb(&odb, repo), 0);
	assert_int_equal(git_odb_foreach(odb, count_cb, &n), 0);
	assert_int_equal(n, 5); /* commit, tree, blob, big, empty */

	/* A miss is not remembered: the object written next is found. */
	git_oid_fromstr(&oid, "d670460b4b4aece5915caf5c68d12f560a9fe3e4"); /* "test content\n" */
	assert_int_equal(git_odb_read(&obj, odb, &oid), GIT_ENOTFOUND);
	sh("echo 'test content' | git --git-dir=r.git hash-object -w --stdin > later.oid");
	read_oid("later.oid", later);
	assert_string_equal(later, "d670460b4b4aece5915caf5c68d12f560a9fe3e4");
	assert_int_equal(git_odb_read(&obj, odb, &oid), 0);
	assert_memory_equal(git_odb_object_data(obj), "test content\n", 13);
	git_odb_object_free(obj);

	git_odb_free(odb);
	repo_cache_put(repo);
	free(p);
}

/* Writes are delegated to libgit2's loose backend; git reads what it wrote. */
static void test_write_delegated(void **state)
{
	struct error err = ERROR_INIT;
	git_repository *repo = NULL;
	git_odb *odb = NULL;
	git_odb_stream *ws = NULL;
	git_oid oid, oid2;
	char h1[GIT_OID_HEXSZ + 1], h2[GIT_OID_HEXSZ + 1];
	size_t n;
	unsigned char *got;
	char *p = path_of("r.git");

	(void)state;
	assert_int_equal(repo_cache_get(p, NULL, NULL, &repo, &err), 0);
	assert_int_equal(git_repository_odb(&odb, repo), 0);
	assert_int_equal(git_odb_write(&oid, odb, "written\n", 8, GIT_OBJECT_BLOB), 0);
	assert_int_equal(git_odb_open_wstream(&ws, odb, 9, GIT_OBJECT_BLOB), 0);
	assert_int_equal(git_odb_stream_write(ws, "streamed\n", 9), 0);
	assert_int_equal(git_odb_stream_finalize_write(&oid2, ws), 0);
	git_odb_stream_free(ws);
	git_odb_free(odb);
	repo_cache_put(repo);
	git_oid_tostr(h1, sizeof(h1), &oid);
	git_oid_tostr(h2, sizeof(h2), &oid2);
	sh("git --git-dir=r.git cat-file blob %s > w1 && git --git-dir=r.git cat-file blob %s > w2",
	   h1, h2);
	got = slurp("w1", &n);
	assert_int_equal(n, 8);
	assert_memory_equal(got, "written\n", 8);
	free(got);
	got = slurp("w2", &n);
	assert_int_equal(n, 9);
	assert_memory_equal(got, "streamed\n", 9);
	free(got);
	free(p);
}

/* The bug itself: half a loose blob, then half a loose commit. */
static void test_truncated_half(void **state)
{
	char blob[41], big[41], commit[41];
	unsigned char *data;
	size_t len;
	char *path;

	(void)state;
	read_oid("big.oid", big);
	path = object_path("r.git", big);
	data = slurp(path + strlen(tmp) + 1, &len);
	write_file(path, data, len / 2);
	assert_outcome("r.git", big, OP_READ, RD_ERROR);
	assert_outcome("r.git", big, OP_LOOKUP, RD_ERROR);
	/* The header sits at the start: like git cat-file -s it still reads. */
	assert_outcome("r.git", big, OP_HEADER, RD_OK);
	free(data);
	free(path);

	read_oid("commit.oid", commit);
	path = object_path("r.git", commit);
	data = slurp(path + strlen(tmp) + 1, &len);
	write_file(path, data, len / 2);
	assert_outcome("r.git", commit, OP_READ, RD_ERROR);
	assert_outcome("r.git", commit, OP_LOOKUP, RD_ERROR);
	assert_outcome("r.git", commit, OP_PREFIX, RD_ERROR);
	free(data);
	free(path);

	read_oid("blob.oid", blob);
	path = object_path("r.git", blob);
	write_file(path, "", 0);
	assert_outcome("r.git", blob, OP_READ, RD_ERROR);
	assert_outcome("r.git", blob, OP_HEADER, RD_ERROR);
	free(path);
}

/* Every truncation length of the commit, in one child under one alarm. */
static void test_truncated_every_length(void **state)
{
	char commit[41];
	unsigned char *data;
	size_t len;
	char *path;
	pid_t pid;
	int status;

	(void)state;
	read_oid("commit.oid", commit);
	path = object_path("r.git", commit);
	data = slurp(path + strlen(tmp) + 1, &len);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct error err = ERROR_INIT;
		git_repository *r = NULL;
		char *p = path_of("r.git");
		size_t cut;

		alarm(4 * READ_TIMEOUT_S);
		if (repo_cache_get(p, NULL, NULL, &r, &err) < 0)
			_exit(1);
		for (cut = 0; cut < len; cut++) {
			write_file(path, data, cut);
			if (do_op(r, commit, OP_READ) != RD_ERROR ||
			    do_op(r, commit, OP_LOOKUP) != RD_ERROR)
				_exit(2);
			(void)do_op(r, commit, OP_HEADER); /* must return, either way */
		}
		write_file(path, data, len);
		_exit(do_op(r, commit, OP_READ) == RD_OK ? 0 : 3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("reading a truncated commit hung (signal %d)", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(data);
	free(path);
}

static void test_truncated_large_blob_cuts(void **state)
{
	static const double cuts[] = { 0.01, 0.2, 0.5, 0.9 };
	char big[41];
	unsigned char *data;
	size_t len, i, at[8], n = 0;
	char *path;

	(void)state;
	read_oid("big.oid", big);
	path = object_path("r.git", big);
	data = slurp(path + strlen(tmp) + 1, &len);
	assert_true(len > 3 * 65536);
	for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		at[n++] = (size_t)(len * cuts[i]);
	at[n++] = 65536;     /* exactly one input chunk */
	at[n++] = len - 4;   /* content complete, adler32 missing */
	at[n++] = len - 1;
	for (i = 0; i < n; i++) {
		write_file(path, data, at[i]);
		assert_outcome("r.git", big, OP_READ, RD_ERROR);
	}
	write_file(path, data, len);
	assert_outcome("r.git", big, OP_READ, RD_OK);
	free(data);
	free(path);
}

static void test_corrupt_and_garbage(void **state)
{
	char big[41], commit[41];
	unsigned char *data;
	size_t len;
	char *path;

	(void)state;
	read_oid("big.oid", big);
	path = object_path("r.git", big);
	data = slurp(path + strlen(tmp) + 1, &len);
	data[len / 2] ^= 0x55;
	write_file(path, data, len);
	assert_outcome("r.git", big, OP_READ, RD_ERROR);
	free(data);
	free(path);

	read_oid("commit.oid", commit);
	path = object_path("r.git", commit);
	data = slurp(path + strlen(tmp) + 1, &len);
	data = realloc(data, len + 3);
	assert_non_null(data);
	memcpy(data + len, "xyz", 3);
	write_file(path, data, len + 3);
	assert_outcome("r.git", commit, OP_READ, RD_ERROR);
	/* Not zlib at all. */
	write_file(path, "hello world, not an object", 26);
	assert_outcome("r.git", commit, OP_READ, RD_ERROR);
	assert_outcome("r.git", commit, OP_HEADER, RD_ERROR);
	free(data);
	free(path);
}

/* Deflates raw bytes into the loose file of the blob, then reads it. */
static void check_raw(const char *hex, const char *raw, size_t raw_len, enum outcome want)
{
	char *path = object_path("r.git", hex);
	char *src = path_of("raw.bin");

	write_file(src, raw, raw_len);
	sh("chmod u+w '%s' && python3 -c 'import sys,zlib; "
	   "sys.stdout.buffer.write(zlib.compress(open(\"raw.bin\",\"rb\").read()))' > '%s'",
	   path, path);
	assert_outcome("r.git", hex, OP_READ, want);
	free(src);
	free(path);
}

#define RAW(s) s, sizeof(s) - 1

static void test_bad_headers(void **state)
{
	char blob[41];

	(void)state;
	read_oid("blob.oid", blob);
	check_raw(blob, RAW("blob 4\0one\n"), RD_OK); /* the real object, re-deflated */
	check_raw(blob, RAW("blob 99\0one\n"), RD_ERROR);
	check_raw(blob, RAW("blob 3\0one\n"), RD_ERROR);
	check_raw(blob, RAW("blub 4\0one\n"), RD_ERROR);
	check_raw(blob, RAW("blob 04\0one\n"), RD_ERROR);
	check_raw(blob, RAW("blob +4\0one\n"), RD_ERROR);
	check_raw(blob, RAW("blob 4one\n"), RD_ERROR);
	check_raw(blob, RAW("blob 99999999999999999999999\0one\n"), RD_ERROR);
	check_raw(blob, RAW("blob 100000000\0one\n"), RD_ERROR); /* far past 1032:1 */
	check_raw(blob, RAW("blob 4\0two\n"), RD_ERROR);        /* hash mismatch */
}

static void test_relative_alternates(void **state)
{
	char blob[41];

	(void)state;
	read_oid("blob.oid", blob);
	sh("git init -q --bare -b main b.git && "
	   "echo ../../r.git/objects > b.git/objects/info/alternates");
	assert_outcome("b.git", blob, OP_READ, RD_OK);
	sh("echo '# nothing' > b.git/objects/info/alternates");
	assert_outcome("b.git", blob, OP_READ, RD_MISSING);
}

static void test_truncated_pack(void **state)
{
	char big[41], blob[41], commit[41];
	enum outcome o;

	(void)state;
	read_oid("big.oid", big);
	read_oid("blob.oid", blob);
	read_oid("commit.oid", commit);
	sh("cd r.git && git update-ref refs/tags/big %s && git repack -q -a -d && "
	   "git prune-packed && "
	   "for p in objects/pack/*.pack; do s=$(stat -c %%s $p); chmod u+w $p; "
	   "truncate -s $((s / 2)) $p; done", big);
	{
		char *a = object_path("r.git", big), *b = object_path("r.git", commit);

		assert_int_equal(access(a, F_OK), -1); /* only in the pack now */
		assert_int_equal(access(b, F_OK), -1);
		free(a);
		free(b);
	}
	o = read_in_child("r.git", big, OP_READ);
	if (o != RD_ERROR && o != RD_MISSING)
		fail_msg("truncated pack: %s", outcome_name(o));
	o = read_in_child("r.git", commit, OP_LOOKUP);
	assert_true(o == RD_ERROR || o == RD_MISSING);
	o = read_in_child("r.git", blob, OP_READ);
	assert_true(o == RD_ERROR || o == RD_MISSING);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_and_new_objects_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_delegated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_half, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_every_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_large_blob_cuts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_and_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relative_alternates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_pack, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	repo_cache_shutdown();
	return rc;
}
