/*
 * Object ids of both formats through git/odb.h: raw tree parsing with
 * 20- and 32-byte ids (and the malformed trees it refuses), entry types
 * from modes, and the hex-id lookups (resolve, header, read, tree entries)
 * giving the git CLI's answers on a SHA-1 repository (libgit2 handle) and
 * on a SHA-256 one (cat-file reader) built with the same content.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "git/odb.h"
#include "git/repo_cache.h"
#include "../support/shell.h"

#define GITENV                                                                                \
	"GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_SYSTEM=/dev/null GIT_AUTHOR_NAME=A "            \
	"GIT_AUTHOR_EMAIL=a@example.com GIT_COMMITTER_NAME=C GIT_COMMITTER_EMAIL=c@example.com " \
	"GIT_AUTHOR_DATE='1700000000 +0000' GIT_COMMITTER_DATE='1700000000 +0000' "

static char tmp[] = "/tmp/odb-XXXXXX";
static char repos[2][128];

struct collected {
	char lines[8][256];
	size_t n;
	int stop_after;
};

static int collect(void *arg, const struct odb_tree_entry *e, struct error *err)
{
	struct collected *c = arg;

	(void)err;
	assert_true(c->n < 8);
	snprintf(c->lines[c->n++], sizeof(c->lines[0]), "%06o %d %.*s %s", (unsigned)e->mode,
		 (int)e->type, (int)e->name_len, e->name, e->oid);
	return c->stop_after && (int)c->n >= c->stop_after;
}

static void test_tree_parse_both_id_sizes(void **state)
{
	/* "100644 a\0" + id, "40000 d\0" + id, "160000 s\0" + id. */
	unsigned char raw[3 * 48];
	struct collected c = { .n = 0 };
	struct error err = ERROR_INIT;
	char want[256];
	size_t len = 0;

	(void)state;
	for (size_t idlen = 20; idlen <= 32; idlen += 12) {
		const char *heads[] = { "100644 a", "40000 d", "160000 s" };

		len = 0;
		memset(&c, 0, sizeof(c));
		for (int i = 0; i < 3; i++) {
			size_t hl = strlen(heads[i]) + 1;

			memcpy(raw + len, heads[i], hl);
			len += hl;
			memset(raw + len, 0xa0 + i, idlen);
			len += idlen;
		}
		assert_int_equal(odb_tree_parse((const char *)raw, len, idlen, collect, &c, &err), 0);
		assert_int_equal(c.n, 3);
		{
			int off = snprintf(want, sizeof(want), "100644 %d a ", GIT_OBJECT_BLOB);

			for (size_t k = 0; k < idlen; k++)
				memcpy(want + off + 2 * k, "a0", 2);
			want[off + 2 * idlen] = '\0';
		}
		assert_int_equal(strlen(c.lines[0]), strlen(want));
		assert_memory_equal(c.lines[0], want, strlen(want));
		assert_int_equal(strlen(strrchr(c.lines[1], ' ') + 1), 2 * idlen);
		assert_non_null(strstr(c.lines[1], "040000 2 d "));
		assert_non_null(strstr(c.lines[2], "160000 1 s a2a2"));
		/* A callback may stop early. */
		memset(&c, 0, sizeof(c));
		c.stop_after = 1;
		assert_int_equal(odb_tree_parse((const char *)raw, len, idlen, collect, &c, &err), 0);
		assert_int_equal(c.n, 1);
	}
	/* 32-byte ids read with the SHA-1 size (or the reverse) are malformed
	 * somewhere: the parse must fail cleanly, never read past the end. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(odb_tree_parse((const char *)raw, len - 1, 32, collect, &c, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_string_equal(err.message, "malformed tree");
	error_release(&err);
	{
		static const char bad_mode[] = "10x644 a\0aaaaaaaaaaaaaaaaaaaa";
		static const char no_name[] = "100644 \0aaaaaaaaaaaaaaaaaaaa";
		static const char no_nul[] = "100644 abc";

		assert_int_equal(odb_tree_parse(bad_mode, sizeof(bad_mode) - 1, 20, collect, &c, &err), -1);
		error_release(&err);
		assert_int_equal(odb_tree_parse(no_name, sizeof(no_name) - 1, 20, collect, &c, &err), -1);
		error_release(&err);
		assert_int_equal(odb_tree_parse(no_nul, sizeof(no_nul) - 1, 20, collect, &c, &err), -1);
		error_release(&err);
	}
	/* An empty tree has no entries. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(odb_tree_parse("", 0, 32, collect, &c, &err), 0);
	assert_int_equal(c.n, 0);
}

static void test_mode_types(void **state)
{
	(void)state;
	assert_int_equal(odb_mode_type(0100644), GIT_OBJECT_BLOB);
	assert_int_equal(odb_mode_type(0100755), GIT_OBJECT_BLOB);
	assert_int_equal(odb_mode_type(0120000), GIT_OBJECT_BLOB);
	assert_int_equal(odb_mode_type(0040000), GIT_OBJECT_TREE);
	assert_int_equal(odb_mode_type(0160000), GIT_OBJECT_COMMIT);
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	for (int i = 0; i < 2; i++) {
		snprintf(repos[i], sizeof(repos[i]), "%s/r%d.git", tmp, i);
		if (test_shell(NULL, 0, 0,
			       GITENV "git init -q --bare -b main --object-format=%s %s && cd %s && "
			       "B=$(printf 'hello\\n' | git hash-object -w --stdin) && "
			       "S=$(printf '100644 blob %%s\\tinner\\n' $B | git mktree) && "
			       "T=$(printf '100644 blob %%s\\tfile.txt\\n040000 tree %%s\\tsub\\n' $B $S | git mktree) && "
			       "C=$(git commit-tree $T -m first) && git update-ref refs/heads/main $C",
			       i ? "sha256" : "sha1", repos[i], repos[i]) != 0)
			return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	repo_cache_shutdown();
	return test_shell(NULL, 0, 0, "rm -rf %s", tmp) == 0 ? 0 : -1;
}

static void test_lookups_match_git_on_both_formats(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		struct error err = ERROR_INIT;
		struct repo_handle h;
		struct odb_object obj;
		struct collected c = { .n = 0 };
		char oid[ODB_OID_MAX], want[128], line[512];
		git_object_t type;
		int64_t size;

		assert_int_equal(repo_cache_get_handle(repos[i], NULL, NULL, &h, &err), 0);
		assert_true(i ? h.cf != NULL : h.repo != NULL);

		assert_int_equal(test_shell(want, sizeof(want), 1, "git -C %s rev-parse main:file.txt",
					    repos[i]), 0);
		assert_int_equal(strlen(want), i ? 64 : 40);
		assert_int_equal(odb_h_resolve(&h, "main:file.txt", oid, &err), 1);
		assert_string_equal(oid, want);
		assert_int_equal(odb_h_header(&h, oid, &type, &size, &err), 1);
		assert_int_equal(type, GIT_OBJECT_BLOB);
		assert_int_equal(size, 6);
		assert_int_equal(odb_h_read(&h, oid, &obj, &err), 1);
		assert_int_equal(obj.len, 6);
		assert_memory_equal(obj.data, "hello\n", 6);
		odb_object_release(&obj);

		/* Ids of the other format's length are simply missing. */
		assert_int_equal(odb_h_header(&h, i ? "ce013625030ba8dba906f756967f9e9ca394464a"
						    : "2cf8d83d9ee29543b34a87727421fdecb7e3f3a183d337639025de576db9ebb4",
					      &type, &size, &err), 0);
		assert_int_equal(odb_h_read(&h, "0000000000000000000000000000000000000000000000000000000000000000",
					    &obj, &err), 0);
		assert_int_equal(odb_h_resolve(&h, "refs/heads/nope", oid, &err), 0);
		assert_null(err.message);

		assert_int_equal(odb_h_resolve(&h, "main^{tree}", oid, &err), 1);
		assert_int_equal(odb_h_tree_each(&h, oid, collect, &c, &err), 1);
		assert_int_equal(c.n, 2);
		assert_int_equal(test_shell(line, sizeof(line), 1,
					    "git -C %s ls-tree main | awk '{printf \"%%s %%s\\n\", $4, $3}'",
					    repos[i]), 0);
		{
			char *nl = strchr(line, '\n');

			assert_non_null(nl);
			*nl = '\0';
			/* "file.txt <oid>" then "sub <oid>" */
			assert_non_null(strstr(c.lines[0], line));
			assert_non_null(strstr(c.lines[1], nl + 1));
			assert_non_null(strstr(c.lines[1], "040000 2 sub "));
		}
		/* A blob is no tree. */
		assert_int_equal(odb_h_resolve(&h, "main:file.txt", oid, &err), 1);
		assert_int_equal(odb_h_tree_each(&h, oid, collect, &c, &err), 0);
		repo_cache_put_handle(&h);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree_parse_both_id_sizes),
		cmocka_unit_test(test_mode_types),
		cmocka_unit_test(test_lookups_match_git_on_both_formats),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
