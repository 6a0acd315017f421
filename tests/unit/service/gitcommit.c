/*
 * Raw commit and tag objects to GitCommit / Tag: header parsing as
 * upstream's catfile parser (parents, signatures with continuation lines,
 * encoding, odd author lines, out-of-range dates), 10 KiB truncation with
 * the full size, subjects, tag names and signature blocks; and the libgit2
 * readers compared with git cat-file on a real repository (peeling through
 * tag chains, missing objects, wrong types).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "service/gitcommit.h"

static char tmp[] = "/tmp/gitcommit-XXXXXX";
static char repo_path[128];
static git_repository *repo;
static char c1[64], tagc[64], tagt[64], tree[64];

static int sh(char *out, size_t cap, const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	int p[2], status = -1;
	size_t len = 0;
	pid_t pid;

	va_start(ap, fmt);
	assert_true(vasprintf(&cmd, fmt, ap) > 0);
	va_end(ap);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		char buf[4096];
		ssize_t n = read(p[0], buf, sizeof(buf));

		if (n <= 0)
			break;
		if (out && len + (size_t)n < cap) {
			memcpy(out + len, buf, (size_t)n);
			len += (size_t)n;
		}
	}
	if (out) {
		out[len] = '\0';
		while (len && out[len - 1] == '\n')
			out[--len] = '\0';
	}
	close(p[0]);
	waitpid(pid, &status, 0);
	free(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define ENV "GIT_AUTHOR_NAME='A U' GIT_AUTHOR_EMAIL=a@x GIT_AUTHOR_DATE='1500000000 +0530' " \
	    "GIT_COMMITTER_NAME=C GIT_COMMITTER_EMAIL=c@x GIT_COMMITTER_DATE='1500000100 -0800' "

static int group_setup(void **state)
{
	(void)state;
	git_libgit2_init();
	if (!mkdtemp(tmp))
		return -1;
	snprintf(repo_path, sizeof(repo_path), "%s/r.git", tmp);
	if (sh(NULL, 0, "git init -q --bare %s", repo_path) != 0)
		return -1;
	if (sh(tree, sizeof(tree), "cd %s && echo hi | git hash-object -w --stdin >/dev/null && "
	       "printf '100644 blob %%s\\tf\\n' $(echo hi | git hash-object --stdin) | git mktree",
	       repo_path) != 0)
		return -1;
	if (sh(c1, sizeof(c1), "cd %s && " ENV "git commit-tree -m 'Subject line' -m 'Body' %s",
	       repo_path, tree) != 0)
		return -1;
	if (sh(tagc, sizeof(tagc), "cd %s && printf 'object %s\\ntype commit\\ntag t1\\ntagger T <t@x> 1 +0000\\n\\nmsg\\n' "
	       "| git hash-object -t tag -w --stdin", repo_path, c1) != 0)
		return -1;
	if (sh(tagt, sizeof(tagt), "cd %s && printf 'object %s\\ntype tag\\ntag t2\\ntagger T <t@x> 1 +0000\\n\\nouter\\n' "
	       "| git hash-object -t tag -w --stdin", repo_path, tagc) != 0)
		return -1;
	return git_repository_open_bare(&repo, repo_path) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	git_repository_free(repo);
	return sh(NULL, 0, "rm -rf %s", tmp);
}

static Gitaly__GitCommit *parse(const char *raw)
{
	Gitaly__GitCommit *c = NULL;
	struct error err = ERROR_INIT;

	assert_int_equal(gitcommit_parse("0123", raw, strlen(raw), &c, &err), 0);
	return c;
}

static void assert_bytes(ProtobufCBinaryData b, const char *want)
{
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
}

static void test_parse_headers(void **state)
{
	Gitaly__GitCommit *c;

	(void)state;
	c = parse("tree t1\nparent p1\nparent p2\n"
		  "author Jane Doe <jane@x> 1234 +0100\ncommitter  <> 99 -0000\n"
		  "encoding ISO-8859-1\n"
		  "gpgsig -----BEGIN SSH SIGNATURE-----\n abc\n -----END SSH SIGNATURE-----\n"
		  "mergetag object x\n type commit\n\n"
		  "Subject\r\n\nbody\n");
	assert_string_equal(c->id, "0123");
	assert_string_equal(c->tree_id, "t1");
	assert_int_equal(c->n_parent_ids, 2);
	assert_string_equal(c->parent_ids[1], "p2");
	assert_bytes(c->author->name, "Jane Doe");
	assert_bytes(c->author->email, "jane@x");
	assert_int_equal(c->author->date->seconds, 1234);
	assert_bytes(c->author->timezone, "+0100");
	assert_bytes(c->committer->name, "");
	assert_bytes(c->committer->email, "");
	assert_string_equal(c->encoding, "ISO-8859-1");
	assert_int_equal(c->signature_type, GITALY__SIGNATURE_TYPE__SSH);
	assert_bytes(c->subject, "Subject");
	assert_bytes(c->body, "Subject\r\n\nbody\n");
	assert_int_equal(c->body_size, 15);
	gitcommit_free(c);
}

static void test_parse_odd_authors(void **state)
{
	Gitaly__GitCommit *c;

	(void)state;
	/* no email at all; three fields (no timezone); bad, negative and huge dates */
	c = parse("author Just A Name \ncommitter N <e> 12 +0000 extra\n\nx");
	assert_bytes(c->author->name, "Just A Name");
	assert_null(c->author->date);
	assert_int_equal(c->committer->date->seconds, 12);
	assert_int_equal(c->committer->timezone.len, 0);
	gitcommit_free(c);
	c = parse("author N <e> -5 +0000\ncommitter N <e> 9007199254740993 +0000\n\nx");
	assert_int_equal(c->author->date->seconds, GITCOMMIT_FALLBACK_SECONDS);
	assert_int_equal(c->committer->date->seconds, GITCOMMIT_FALLBACK_SECONDS);
	gitcommit_free(c);
	c = parse("author N <e> +7 +0000\ncommitter N <e\n\nx");
	assert_int_equal(c->author->date->seconds, 7);
	assert_bytes(c->committer->email, "");
	assert_null(c->committer->date);
	gitcommit_free(c);
	/* PGP and X.509 signatures; unknown signature text */
	c = parse("gpgsig -----BEGIN PGP SIGNATURE-----\n x\n\n");
	assert_int_equal(c->signature_type, GITALY__SIGNATURE_TYPE__PGP);
	assert_int_equal(c->subject.len, 0);
	assert_int_equal(c->body_size, 0);
	gitcommit_free(c);
	c = parse("gpgsig-sha256 -----BEGIN SIGNED MESSAGE-----\n x\n\nm");
	assert_int_equal(c->signature_type, GITALY__SIGNATURE_TYPE__X509);
	gitcommit_free(c);
	c = parse("gpgsig whatever\n\nm");
	assert_int_equal(c->signature_type, GITALY__SIGNATURE_TYPE__NONE);
	gitcommit_free(c);
	/* header running into EOF: no body */
	c = parse("tree abc");
	assert_string_equal(c->tree_id, "abc");
	assert_int_equal(c->body_size, 0);
	gitcommit_free(c);
}

static void test_body_truncation(void **state)
{
	size_t n = GITCOMMIT_MAX_MESSAGE + 100;
	char *raw = malloc(n + 16);
	Gitaly__GitCommit *c = NULL;
	struct error err = ERROR_INIT;

	(void)state;
	memcpy(raw, "tree t\n\n", 8);
	memset(raw + 8, 'x', n);
	assert_int_equal(gitcommit_parse("id", raw, 8 + n, &c, &err), 0);
	assert_int_equal(c->body.len, GITCOMMIT_MAX_MESSAGE);
	assert_int_equal(c->body_size, (int64_t)n);
	assert_int_equal(c->subject.len, n); /* upstream keeps the whole first line */
	gitcommit_free(c);
	free(raw);
}

static void test_tags(void **state)
{
	const char *raw = "object abc\ntype commit\ntag from-header\ntagger T <t@x> 5 +0200\n\n"
			  "message\n-----BEGIN PGP SIGNATURE-----\nsig\n-----END PGP SIGNATURE-----\n";
	Gitaly__Tag *t = NULL;
	struct error err = ERROR_INIT;
	char *obj = NULL, *type = NULL;
	size_t off, len;

	(void)state;
	assert_int_equal(gitcommit_parse_tag("tid", raw, strlen(raw), NULL, 0, &t, &obj, &type, &err), 0);
	assert_bytes(t->name, "from-header");
	assert_string_equal(obj, "abc");
	assert_string_equal(type, "commit");
	assert_int_equal(t->signature_type, GITALY__SIGNATURE_TYPE__PGP);
	assert_int_equal(t->tagger->date->seconds, 5);
	assert_int_equal(t->message_size, (int64_t)t->message.len);
	gitcommit_tag_free(t);
	free(obj);
	free(type);

	assert_int_equal(gitcommit_parse_tag("tid", raw, strlen(raw), "ref-name", 8, &t, NULL, NULL, &err), 0);
	assert_bytes(t->name, "ref-name");
	gitcommit_tag_free(t);

	/* a signature block needs text before it */
	assert_int_equal(gitcommit_tag_signature("-----BEGIN X", 12, &off, &len), 0);
	assert_int_equal(off, 12);
	assert_int_equal(gitcommit_tag_signature("a\n-----BEGIN X\n", 15, &off, &len), 1);
	assert_int_equal(off, 2);
	assert_int_equal(len, 12);

	/* trimming: trailing newlines go, size follows, long messages cut */
	raw = "object a\n\nhello\n\n\n";
	assert_int_equal(gitcommit_parse_tag("tid", raw, strlen(raw), NULL, 0, &t, NULL, NULL, &err), 0);
	gitcommit_trim_tag_message(t);
	assert_bytes(t->message, "hello");
	assert_int_equal(t->message_size, 5);
	gitcommit_tag_free(t);
}

static void test_read_from_repository(void **state)
{
	Gitaly__GitCommit *c = NULL;
	Gitaly__Tag *t = NULL;
	struct error err = ERROR_INIT;
	git_oid oid;
	char want[256];

	(void)state;
	assert_int_equal(git_oid_fromstr(&oid, c1), 0);
	assert_int_equal(gitcommit_read(repo, &oid, &c, &err), 0);
	assert_string_equal(c->id, c1);
	assert_string_equal(c->tree_id, tree);
	assert_bytes(c->subject, "Subject line");
	sh(want, sizeof(want), "git -C %s cat-file commit %s | sed '1,/^$/d'", repo_path, c1);
	assert_int_equal(c->body_size, (int64_t)strlen(want) + 1);
	assert_bytes(c->author->name, "A U");
	assert_bytes(c->author->timezone, "+0530");
	assert_int_equal(c->committer->date->seconds, 1500000100);
	assert_bytes(c->committer->timezone, "-0800");
	gitcommit_free(c);

	/* peeling through two tags */
	assert_int_equal(git_oid_fromstr(&oid, tagt), 0);
	assert_int_equal(gitcommit_read(repo, &oid, &c, &err), 0);
	assert_string_equal(c->id, c1);
	gitcommit_free(c);
	assert_int_equal(gitcommit_read_tag(repo, &oid, "n", 1, &t, &err), 0);
	assert_string_equal(t->id, tagt);
	assert_non_null(t->target_commit);
	assert_string_equal(t->target_commit->id, c1);
	gitcommit_tag_free(t);

	/* a tree is not a commit; a commit is not a tag; missing objects */
	assert_int_equal(git_oid_fromstr(&oid, tree), 0);
	assert_int_equal(gitcommit_read(repo, &oid, &c, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "expected commit, got tree");
	assert_int_equal(git_oid_fromstr(&oid, c1), 0);
	assert_int_equal(gitcommit_read_tag(repo, &oid, NULL, 0, &t, &err), -1);
	assert_string_equal(err.message, "expected tag, got commit");
	assert_int_equal(git_oid_fromstr(&oid, "1111111111111111111111111111111111111111"), 0);
	assert_int_equal(gitcommit_read(repo, &oid, &c, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_headers),
		cmocka_unit_test(test_parse_odd_authors),
		cmocka_unit_test(test_body_truncation),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_read_from_repository),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
