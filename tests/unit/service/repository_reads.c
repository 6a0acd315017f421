/*
 * RepositoryService read RPCs driven through a fake call context against
 * repositories generated here, each answer compared with the git CLI:
 * Fsck (git fsck), ObjectsSize (rev-list --disk-usage), GetFileAttributes
 * (check-attr in a work tree), GetInfoAttributes (the file's bytes),
 * SearchFilesByName (ls-tree), SearchFilesByContent (git grep), plus the
 * bad-input answers (dash revisions, missing repository, empty fields).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/service.h"
#include "service/util.h"
#include "fake_call.h"
#define FIXTURE_TMP "/tmp/svc-reads-XXXXXX"
#define FIXTURE_SERVICE "gitaly.RepositoryService"
#include "service_fixture.h"
#include "../support/shell.h"

#define OUT_CAP 65536

/* Shell commands with stdout captured into out (OUT_CAP bytes at most). */
#define sh(out, ...) test_shell((out), OUT_CAP, 1, __VA_ARGS__)

#define GITC "git -c user.name=T -c user.email=t@example.com -c init.defaultBranch=main"

/* The shared fixture: a work tree with attributes, text, binary and nested
 * files, cloned bare into the storage as reads.git. */
static void make_reads_repo(void)
{
	assert_int_equal(sh(NULL,
			    "set -e; w=%s/rw; rm -rf $w %s/reads.git; " GITC " init -q $w; cd $w;"
			    "printf '*.txt diff=foo\\n*.bin -diff binary\\nsub/deep/* eol=lf\\n' > .gitattributes;"
			    "mkdir -p sub/deep; printf 'alpha\\nbeta\\ngamma\\ndelta\\nepsilon\\nzeta\\neta\\ntheta\\niota\\nkappa\\nNeedle here\\nlambda\\n' > a.txt;"
			    "printf 'one\\nneedle two\\nthree\\r\\n' > sub/x.md; echo deep > sub/deep/y.c;"
			    "printf 'needle\\0binary' > blob.bin;"
			    GITC " add .; " GITC " commit -qm first;"
			    "echo more >> a.txt; " GITC " commit -qam second;"
			    "git clone -q --bare $w %s/reads.git",
			    tmp, storage_path, storage_path),
			 0);
}

static Gitaly__Repository reads_repo = { .base = PROTOBUF_C_MESSAGE_INIT(&gitaly__repository__descriptor),
					 .storage_name = "default", .relative_path = "reads.git" };

static void expect_error(int rc, struct error *err, int code, const char *msg)
{
	assert_int_equal(rc, -1);
	assert_int_equal(err->code, code);
	assert_string_equal(err->message, msg);
	error_release(err);
}

static void test_fsck(void **state)
{
	Gitaly__FsckRequest req = GITALY__FSCK_REQUEST__INIT;
	Gitaly__Repository missing = reads_repo;
	Gitaly__FsckResponse *resp;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	static char want[OUT_CAP];
	char obj[OUT_CAP];

	(void)state;
	make_reads_repo();
	req.repository = &reads_repo;
	assert_int_equal(invoke("Fsck", &req.base, &call, &err), 0);
	resp = (Gitaly__FsckResponse *)call.sent[0];
	assert_int_equal(resp->error.len, 0);
	fake_call_reset(&call);

	/* Break the repository: remove the loose blob of sub/deep/y.c. */
	assert_int_equal(sh(NULL, "rm -rf %s/broken.git && git init -q --bare %s/broken.git && "
				  "git -C %s/rw push -q %s/broken.git main",
			    storage_path, storage_path, tmp, storage_path), 0);
	assert_int_equal(sh(obj, "git --git-dir=%s/broken.git rev-parse main:sub/deep/y.c", storage_path), 0);
	/* Pushed objects stay loose (below transfer.unpackLimit): remove one. */
	assert_int_equal(sh(NULL, "o=%s; rm %s/broken.git/objects/$(echo $o | cut -c1-2)/$(echo $o | cut -c3-)",
			    obj, storage_path), 0);
	sh(want, "cd %s/broken.git && git fsck --no-progress --no-dangling >/tmp/fsck-o-$$ 2>/tmp/fsck-e-$$; "
		 "cat /tmp/fsck-o-$$ /tmp/fsck-e-$$; rm -f /tmp/fsck-o-$$ /tmp/fsck-e-$$", storage_path);
	assert_non_null(strstr(want, obj));
	missing.relative_path = "broken.git";
	req.repository = &missing;
	assert_int_equal(invoke("Fsck", &req.base, &call, &err), 0);
	resp = (Gitaly__FsckResponse *)call.sent[0];
	assert_true(resp->error.len > 0);
	{
		size_t n = resp->error.len;

		while (n && resp->error.data[n - 1] == '\n')
			n--;
		assert_int_equal(n, strlen(want));
		assert_memory_equal(resp->error.data, want, n);
	}
	fake_call_reset(&call);

	missing.relative_path = "nope.git";
	assert_int_equal(invoke("Fsck", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	error_release(&err);
}

static void test_objects_size(void **state)
{
	Gitaly__ObjectsSizeRequest req = GITALY__OBJECTS_SIZE_REQUEST__INIT;
	ProtobufCBinaryData revs[2];
	struct rpc_call call;
	struct error err = ERROR_INIT;
	char want[OUT_CAP];

	(void)state;
	make_reads_repo();
	req.repository = &reads_repo;
	revs[0].data = (uint8_t *)"main~1";
	revs[0].len = 6;
	req.revisions = revs;
	req.n_revisions = 1;
	assert_int_equal(sh(want, "git --git-dir=%s/reads.git rev-list --disk-usage --objects main~1",
			    storage_path), 0);
	if (invoke("ObjectsSize", &req.base, &call, &err) < 0) fail_msg("%s", err.message);
	assert_int_equal(((Gitaly__ObjectsSizeResponse *)call.sent[0])->size, strtoull(want, NULL, 10));
	fake_call_reset(&call);

	/* Two revisions (upstream allows pseudo revisions too, but git before
	 * 2.42 refuses options in --stdin mode). */
	revs[1].data = (uint8_t *)"main";
	revs[1].len = 4;
	req.n_revisions = 2;
	assert_int_equal(sh(want, "git --git-dir=%s/reads.git rev-list --disk-usage --objects main~1 main",
			    storage_path), 0);
	if (invoke("ObjectsSize", &req.base, &call, &err) < 0) fail_msg("%s", err.message);
	assert_int_equal(((Gitaly__ObjectsSizeResponse *)call.sent[0])->size, strtoull(want, NULL, 10));
	assert_true(strtoull(want, NULL, 10) > 0);
	fake_call_reset(&call);

	revs[1].data = (uint8_t *)"-main";
	expect_error(invoke("ObjectsSize", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "validating revision: revision can't start with '-'");
	revs[1].data = (uint8_t *)"nopes";
	expect_error(invoke("ObjectsSize", &req.base, &call, &err), &err, STATUS_NOT_FOUND,
		     "revision not found");
	req.n_revisions = 0;
	expect_error(invoke("ObjectsSize", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "no revisions specified");
	req.repository = NULL;
	expect_error(invoke("ObjectsSize", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "repository not set");
}

static void test_file_attributes(void **state)
{
	Gitaly__GetFileAttributesRequest req = GITALY__GET_FILE_ATTRIBUTES_REQUEST__INIT;
	Gitaly__GetFileAttributesResponse *resp;
	char *attrs[] = { "diff", "eol", "binary" };
	char *paths[] = { "a.txt", "sub/x.md", "c.bin", "none", "sub/deep/y.c" };
	struct rpc_call call;
	struct error err = ERROR_INIT;
	char want[OUT_CAP], got[OUT_CAP];
	size_t len = 0;
	struct stat st;
	char info[256];

	(void)state;
	make_reads_repo();
	req.repository = &reads_repo;
	req.revision.data = (uint8_t *)"main";
	req.revision.len = 4;
	req.attributes = attrs;
	req.n_attributes = 3;
	req.paths = paths;
	req.n_paths = 5;
	if (invoke("GetFileAttributes", &req.base, &call, &err) < 0) fail_msg("%s", err.message);
	resp = (Gitaly__GetFileAttributesResponse *)call.sent[0];
	got[0] = '\0';
	for (size_t i = 0; i < resp->n_attribute_infos; i++)
		len += (size_t)snprintf(got + len, sizeof(got) - len, "%s: %s: %s\n",
					resp->attribute_infos[i]->path,
					resp->attribute_infos[i]->attribute,
					resp->attribute_infos[i]->value);
	while (len && got[len - 1] == '\n')
		got[--len] = '\0';
	/* The same question asked of git in the work tree, unspecified dropped. */
	assert_int_equal(sh(want, "cd %s/rw && git check-attr diff eol binary -- a.txt sub/x.md c.bin none sub/deep/y.c"
				  " | grep -v ': unspecified$'", tmp), 0);
	assert_string_equal(got, want);
	assert_int_equal(resp->n_attribute_infos, 4);
	fake_call_reset(&call);

	/* The older revision has the same attributes file; a bad one fails. */
	req.revision.data = (uint8_t *)"-main";
	req.revision.len = 5;
	assert_int_equal(invoke("GetFileAttributes", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_UNKNOWN);
	error_release(&err);

	req.n_attributes = 0;
	expect_error(invoke("GetFileAttributes", &req.base, &call, &err), &err,
		     STATUS_INVALID_ARGUMENT, "attributes are required");
	req.n_paths = 0;
	expect_error(invoke("GetFileAttributes", &req.base, &call, &err), &err,
		     STATUS_INVALID_ARGUMENT, "file paths are required");
	req.revision.len = 0;
	expect_error(invoke("GetFileAttributes", &req.base, &call, &err), &err,
		     STATUS_INVALID_ARGUMENT, "revision is required");
	/* Nothing written into the repository. */
	snprintf(info, sizeof(info), "%s/reads.git/index", storage_path);
	assert_int_equal(stat(info, &st), -1);
}

static void test_info_attributes(void **state)
{
	Gitaly__GetInfoAttributesRequest req = GITALY__GET_INFO_ATTRIBUTES_REQUEST__INIT;
	Gitaly__Repository missing = reads_repo;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	size_t total = 0;

	(void)state;
	make_reads_repo();
	req.repository = &reads_repo;
	assert_int_equal(sh(NULL, "rm -f %s/reads.git/info/attributes", storage_path), 0);
	assert_int_equal(invoke("GetInfoAttributes", &req.base, &call, &err), 0);
	assert_int_equal(call.n_sent, 1);
	assert_int_equal(((Gitaly__GetInfoAttributesResponse *)call.sent[0])->attributes.len, 0);
	fake_call_reset(&call);

	/* 300 KiB: three chunks, bytes unchanged. */
	assert_int_equal(sh(NULL, "mkdir -p %s/reads.git/info && head -c 307200 /dev/urandom > %s/reads.git/info/attributes",
			    storage_path, storage_path), 0);
	assert_int_equal(invoke("GetInfoAttributes", &req.base, &call, &err), 0);
	assert_int_equal(call.n_sent, 3);
	{
		FILE *f;
		char fn[256];
		uint8_t *want = malloc(307200);

		snprintf(fn, sizeof(fn), "%s/reads.git/info/attributes", storage_path);
		f = fopen(fn, "rb");
		assert_non_null(f);
		assert_int_equal(fread(want, 1, 307200, f), 307200);
		fclose(f);
		for (size_t i = 0; i < call.n_sent; i++) {
			Gitaly__GetInfoAttributesResponse *r = (Gitaly__GetInfoAttributesResponse *)call.sent[i];

			assert_true(r->attributes.len <= SERVICE_CHUNK_SIZE);
			assert_memory_equal(r->attributes.data, want + total, r->attributes.len);
			total += r->attributes.len;
		}
		free(want);
	}
	assert_int_equal(total, 307200);
	fake_call_reset(&call);

	missing.relative_path = "nope.git";
	req.repository = &missing;
	assert_int_equal(invoke("GetInfoAttributes", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	error_release(&err);
}

/* Joins the files of a SearchFilesByName answer with newlines. */
static void names_of(struct rpc_call *call, char *out)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t m = 0; m < call->n_sent; m++) {
		Gitaly__SearchFilesByNameResponse *r = (Gitaly__SearchFilesByNameResponse *)call->sent[m];

		for (size_t i = 0; i < r->n_files; i++)
			len += (size_t)snprintf(out + len, OUT_CAP - len, "%s%.*s", len ? "\n" : "",
						(int)r->files[i].len, (const char *)r->files[i].data);
	}
}

static void test_search_by_name(void **state)
{
	Gitaly__SearchFilesByNameRequest req = GITALY__SEARCH_FILES_BY_NAME_REQUEST__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	char want[OUT_CAP], got[OUT_CAP];

	(void)state;
	make_reads_repo();
	req.repository = &reads_repo;
	req.query = ".";
	req.ref.data = (uint8_t *)"main";
	req.ref.len = 4;
	assert_int_equal(invoke("SearchFilesByName", &req.base, &call, &err), 0);
	assert_int_equal(call.n_sent, 1);
	names_of(&call, got);
	assert_int_equal(sh(want, "git --git-dir=%s/reads.git ls-tree --full-tree --name-only -r main", storage_path), 0);
	assert_string_equal(got, want);
	fake_call_reset(&call);

	req.query = "sub";
	assert_int_equal(invoke("SearchFilesByName", &req.base, &call, &err), 0);
	names_of(&call, got);
	assert_string_equal(got, "sub/deep/y.c\nsub/x.md");
	fake_call_reset(&call);

	/* Filter, offset and limit apply in that order. */
	req.query = ".";
	req.filter = "\\.(txt|md|c)$";
	assert_int_equal(invoke("SearchFilesByName", &req.base, &call, &err), 0);
	names_of(&call, got);
	assert_string_equal(got, "a.txt\nsub/deep/y.c\nsub/x.md");
	fake_call_reset(&call);
	req.offset = 1;
	req.limit = 1;
	assert_int_equal(invoke("SearchFilesByName", &req.base, &call, &err), 0);
	names_of(&call, got);
	assert_string_equal(got, "sub/deep/y.c");
	fake_call_reset(&call);

	/* Unknown ref: an empty answer, as upstream. */
	req.ref.data = (uint8_t *)"nope";
	assert_int_equal(invoke("SearchFilesByName", &req.base, &call, &err), 0);
	assert_int_equal(call.n_sent, 1);
	assert_int_equal(((Gitaly__SearchFilesByNameResponse *)call.sent[0])->n_files, 0);
	fake_call_reset(&call);

	req.filter = "(";
	expect_error(invoke("SearchFilesByName", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "filter did not compile: Unmatched ( or \\(");
	req.ref.data = (uint8_t *)"-main";
	req.ref.len = 5;
	expect_error(invoke("SearchFilesByName", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "invalid ref argument");
	req.ref.len = 0;
	expect_error(invoke("SearchFilesByName", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "no ref given");
	req.query = "";
	expect_error(invoke("SearchFilesByName", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "no query given");
}

static void test_search_by_content(void **state)
{
	Gitaly__SearchFilesByContentRequest req = GITALY__SEARCH_FILES_BY_CONTENT_REQUEST__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	static char want[OUT_CAP], got[OUT_CAP];
	size_t len = 0;

	(void)state;
	make_reads_repo();
	req.repository = &reads_repo;
	req.query = "needle";
	req.ref.data = (uint8_t *)"main";
	req.ref.len = 4;
	assert_int_equal(invoke("SearchFilesByContent", &req.base, &call, &err), 0);
	/* Two matches (the binary file is skipped), each data then end_of_match. */
	assert_int_equal(call.n_sent, 4);
	for (size_t i = 0; i < call.n_sent; i++) {
		Gitaly__SearchFilesByContentResponse *r = (Gitaly__SearchFilesByContentResponse *)call.sent[i];

		assert_int_equal(r->end_of_match, i % 2 == 1);
		if (r->end_of_match) {
			assert_int_equal(r->match_data.len, 0);
			len += (size_t)snprintf(got + len, sizeof(got) - len, "--\n");
		} else {
			memcpy(got + len, r->match_data.data, r->match_data.len);
			len += r->match_data.len;
		}
	}
	for (size_t i = 0; i < len; i++)
		if (got[i] == '\0')
			got[i] = '@';
	while (len && got[len - 1] == '\n')
		len--;
	got[len] = '\0';
	/* git grep's own output, CRs at line ends dropped, "--" after each block. */
	assert_int_equal(sh(want, "git --git-dir=%s/reads.git grep --ignore-case -I --line-number --null "
				  "--before-context=2 --after-context=2 --perl-regexp -e needle main | tr -d '\\r' | tr '\\0' @; echo --",
			    storage_path), 0);
	assert_string_equal(got, want);
	assert_non_null(strstr(got, "main:a.txt@11@Needle here"));
	assert_non_null(strstr(got, "main:sub/x.md@2@needle two"));
	fake_call_reset(&call);

	req.query = "no-such-text-anywhere";
	assert_int_equal(invoke("SearchFilesByContent", &req.base, &call, &err), 0);
	assert_int_equal(call.n_sent, 0);

	req.ref.data = (uint8_t *)"--output=/tmp/x";
	req.ref.len = strlen("--output=/tmp/x");
	expect_error(invoke("SearchFilesByContent", &req.base, &call, &err), &err,
		     STATUS_INVALID_ARGUMENT, "invalid ref argument");
	req.repository = NULL;
	expect_error(invoke("SearchFilesByContent", &req.base, &call, &err), &err,
		     STATUS_INVALID_ARGUMENT, "repository not set");
}

/* Writes the data of every sent message (CreateBundle* / GetArchive /
 * GetSnapshot responses all keep their bytes in field 1) to file. */
static void save_stream(struct rpc_call *call, const char *file)
{
	FILE *f = fopen(file, "wb");

	assert_non_null(f);
	for (size_t i = 0; i < call->n_sent; i++) {
		/* All these responses are { bytes data = 1; }. */
		Gitaly__CreateBundleResponse *r = (Gitaly__CreateBundleResponse *)call->sent[i];

		assert_true(r->data.len > 0 && r->data.len <= SERVICE_CHUNK_SIZE);
		assert_int_equal(fwrite(r->data.data, 1, r->data.len, f), r->data.len);
	}
	fclose(f);
}

static void test_create_bundle(void **state)
{
	Gitaly__CreateBundleRequest req = GITALY__CREATE_BUNDLE_REQUEST__INIT;
	Gitaly__Repository empty = reads_repo;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	char file[256], want[OUT_CAP], got[OUT_CAP];

	(void)state;
	make_reads_repo();
	assert_int_equal(sh(NULL, "git --git-dir=%s/reads.git tag v1 main~1 && "
				  "git --git-dir=%s/reads.git update-ref refs/keep-around/x main~1",
			    storage_path, storage_path), 0);
	req.repository = &reads_repo;
	assert_int_equal(invoke("CreateBundle", &req.base, &call, &err), 0);
	assert_true(call.n_sent >= 1);
	snprintf(file, sizeof(file), "%s/all.bundle", tmp);
	save_stream(&call, file);
	fake_call_reset(&call);
	assert_int_equal(sh(NULL, "git --git-dir=%s/reads.git bundle verify -q %s", storage_path, file), 0);
	assert_int_equal(sh(got, "git bundle list-heads %s | grep -v ' HEAD$' | sort", file), 0);
	assert_int_equal(sh(want, "git --git-dir=%s/reads.git for-each-ref --format='%%(objectname) %%(refname)' | sort",
			    storage_path), 0);
	assert_string_equal(got, want);
	/* Unbundling into an empty repository gives every object back. */
	assert_int_equal(sh(NULL, "rm -rf %s/un.git && git init -q --bare --initial-branch=main %s/un.git && "
				  "git --git-dir=%s/un.git fetch -q %s 'refs/*:refs/*' && "
				  "git --git-dir=%s/un.git fsck --no-progress",
			    tmp, tmp, tmp, file, tmp), 0);

	assert_int_equal(sh(NULL, "rm -rf %s/empty.git && git init -q --bare %s/empty.git",
			    storage_path, storage_path), 0);
	empty.relative_path = "empty.git";
	req.repository = &empty;
	expect_error(invoke("CreateBundle", &req.base, &call, &err), &err, STATUS_FAILED_PRECONDITION,
		     "create bundle: refusing to create empty bundle");
	/* Like upstream, git's bundle header may already have been streamed. */
	assert_true(call.n_sent <= 1);
	fake_call_reset(&call);
	empty.relative_path = "../escape.git";
	expect_error(invoke("CreateBundle", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "relative path escapes root directory");
}

static void test_create_bundle_from_ref_list(void **state)
{
	Gitaly__CreateBundleFromRefListRequest req = GITALY__CREATE_BUNDLE_FROM_REF_LIST_REQUEST__INIT;
	ProtobufCBinaryData pats[3];
	struct rpc_call call;
	struct error err = ERROR_INIT;
	char file[256], want[OUT_CAP], got[OUT_CAP];

	(void)state;
	make_reads_repo();
	assert_int_equal(sh(NULL, "git --git-dir=%s/reads.git branch other main~1", storage_path), 0);
	pats[0].data = (uint8_t *)"refs/heads/other";
	pats[0].len = strlen("refs/heads/other");
	pats[1].data = (uint8_t *)"refs/heads/missing";
	pats[1].len = strlen("refs/heads/missing");
	pats[2].data = (uint8_t *)"^refs/heads/other~1";
	pats[2].len = strlen("^refs/heads/other~1");
	req.repository = &reads_repo;
	req.patterns = pats;
	req.n_patterns = 2;
	assert_int_equal(invoke("CreateBundleFromRefList", &req.base, &call, &err), 0);
	snprintf(file, sizeof(file), "%s/some.bundle", tmp);
	save_stream(&call, file);
	fake_call_reset(&call);
	assert_int_equal(sh(NULL, "git --git-dir=%s/reads.git bundle verify -q %s", storage_path, file), 0);
	assert_int_equal(sh(got, "git bundle list-heads %s", file), 0);
	assert_int_equal(sh(want, "git --git-dir=%s/reads.git show-ref refs/heads/other", storage_path), 0);
	assert_string_equal(got, want);

	/* Nothing matching: the empty bundle is refused. */
	req.patterns = pats + 1;
	req.n_patterns = 1;
	expect_error(invoke("CreateBundleFromRefList", &req.base, &call, &err), &err,
		     STATUS_FAILED_PRECONDITION, "create bundle: refusing to create empty bundle");
	fake_call_reset(&call); /* git's bundle header may have gone out */
	req.repository = NULL;
	expect_error(invoke("CreateBundleFromRefList", &req.base, &call, &err), &err,
		     STATUS_INVALID_ARGUMENT, "repository not set");
}

static void raw_changes_of(struct rpc_call *call, char *out)
{
	static const char ops[] = "?ACDMRT";
	size_t len = 0;

	out[0] = '\0';
	for (size_t m = 0; m < call->n_sent; m++) {
		Gitaly__GetRawChangesResponse *r = (Gitaly__GetRawChangesResponse *)call->sent[m];

		for (size_t i = 0; i < r->n_raw_changes; i++) {
			Gitaly__GetRawChangesResponse__RawChange *c = r->raw_changes[i];

			len += (size_t)snprintf(out + len, OUT_CAP - len,
						"%s%c %06o %06o %s %lld %.*s|%.*s", len ? "\n" : "",
						ops[c->operation], (unsigned)c->old_mode,
						(unsigned)c->new_mode, c->blob_id, (long long)c->size,
						(int)c->old_path_bytes.len, (const char *)c->old_path_bytes.data,
						(int)c->new_path_bytes.len, (const char *)c->new_path_bytes.data);
		}
	}
}

/* The same list from `git diff --raw --no-abbrev` and `git cat-file -s`. */
static void raw_changes_want(const char *from, const char *to, char *out)
{
	assert_int_equal(sh(out,
			    "cd %s/reads.git && git diff --raw --no-abbrev %s %s | "
			    "while IFS=\"$(printf '\\t')\" read -r meta p1 p2; do set -- $meta;"
			    " sm=${1#:}; dm=$2; st=$(echo $5 | cut -c1);"
			    " if [ $4 = 0000000000000000000000000000000000000000 ]; then b=$3; m=$sm; else b=$4; m=$dm; fi;"
			    " if [ $m = 160000 ]; then b=; sz=0; else sz=$(git cat-file -s $b); fi;"
			    " case $st in A) o=; n=$p1;; D) o=$p1; n=;; R|C) o=$p1; n=$p2;; *) o=$p1; n=$p1;; esac;"
			    " echo \"$st $sm $dm $b $sz $o|$n\"; done",
			    storage_path, from, to),
			 0);
}

static void test_raw_changes(void **state)
{
	Gitaly__GetRawChangesRequest req = GITALY__GET_RAW_CHANGES_REQUEST__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	char want[OUT_CAP], got[OUT_CAP], from[64], to[64];

	(void)state;
	make_reads_repo();
	/* A third commit: modify, delete, rename, mode change, submodule. */
	assert_int_equal(sh(NULL, "set -e; cd %s/rw; echo changed > a.txt; git rm -q blob.bin;"
				  "git mv sub/x.md sub/renamed.md; chmod +x sub/deep/y.c; git add a.txt sub/deep/y.c;"
				  "git update-index --add --cacheinfo 160000,%s,vendor/mod;"
				  GITC " commit -qm third; git push -q %s/reads.git main",
			    tmp, "1111111111111111111111111111111111111111", storage_path), 0);
	assert_int_equal(sh(from, "git --git-dir=%s/reads.git rev-parse main~1", storage_path), 0);
	assert_int_equal(sh(to, "git --git-dir=%s/reads.git rev-parse main", storage_path), 0);
	req.repository = &reads_repo;
	req.from_revision = from;
	req.to_revision = to;
	assert_int_equal(invoke("GetRawChanges", &req.base, &call, &err), 0);
	raw_changes_of(&call, got);
	fake_call_reset(&call);
	raw_changes_want(from, to, want);
	assert_string_equal(got, want);
	assert_non_null(strstr(got, "R 100644 100644"));
	if (!strstr(got, "A 000000 160000  0 |vendor/mod")) fail_msg("%s", got);

	/* Zero from: everything as added against the empty tree. */
	req.from_revision = "0000000000000000000000000000000000000000";
	assert_int_equal(invoke("GetRawChanges", &req.base, &call, &err), 0);
	raw_changes_of(&call, got);
	fake_call_reset(&call);
	raw_changes_want("4b825dc642cb6eb9a060e54bf8d69288fbee4904", to, want);
	assert_string_equal(got, want);

	/* Zero to: nothing at all. */
	req.from_revision = from;
	req.to_revision = "0000000000000000000000000000000000000000";
	assert_int_equal(invoke("GetRawChanges", &req.base, &call, &err), 0);
	assert_int_equal(call.n_sent, 0);

	req.to_revision = "-x";
	expect_error(invoke("GetRawChanges", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "invalid 'to' revision: \"-x\"");
	req.from_revision = "nope";
	expect_error(invoke("GetRawChanges", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "invalid 'from' revision: \"nope\"");
	req.from_revision = "";
	expect_error(invoke("GetRawChanges", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "invalid 'from' revision: \"\"");
}

static int run_archive(Gitaly__GetArchiveRequest *req, const char *file, struct error *err)
{
	struct rpc_call call;
	int rc = invoke("GetArchive", &req->base, &call, err);

	if (rc == 0)
		save_stream(&call, file);
	fake_call_reset(&call);
	return rc;
}

/* Lists every file under dir with its content hash, as git sees the tree. */
#define TREE_LIST "find . -type f | sed 's|^\\./||' | sort | while read f; do echo \"$f $(git hash-object \"$f\")\"; done"

static void test_archive(void **state)
{
	Gitaly__GetArchiveRequest req = GITALY__GET_ARCHIVE_REQUEST__INIT;
	ProtobufCBinaryData ex[1];
	struct error err = ERROR_INIT;
	char file[256], want[OUT_CAP], got[OUT_CAP];
	static const struct { int format; const char *unpack, *git_format; } formats[] = {
		{ GITALY__GET_ARCHIVE_REQUEST__FORMAT__TAR, "tar xf", "tar" },
		{ GITALY__GET_ARCHIVE_REQUEST__FORMAT__TAR_GZ, "tar xzf", "tar.gz" },
		{ GITALY__GET_ARCHIVE_REQUEST__FORMAT__TAR_BZ2, "tar xjf", "tar.bz2" },
		{ GITALY__GET_ARCHIVE_REQUEST__FORMAT__ZIP, "unzip -q", "zip" },
	};

	(void)state;
	make_reads_repo();
	snprintf(file, sizeof(file), "%s/out.archive", tmp);
	req.repository = &reads_repo;
	req.commit_id = "main";
	req.prefix = "proj-main";
	/* The whole tree, every format: unpacked files match ls-tree / the blobs. */
	assert_int_equal(sh(want, "cd %s/rw && git ls-tree -r --format='%%(path) %%(objectname)' main | sort", tmp), 0);
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		req.format = formats[i].format;
		assert_int_equal(run_archive(&req, file, &err), 0);
		assert_int_equal(sh(got, "rm -rf %s/x && mkdir %s/x && cd %s/x && %s %s && cd proj-main && " TREE_LIST,
				    tmp, tmp, tmp, formats[i].unpack, file), 0);
		assert_string_equal(got, want);
	}
	/* tar.gz is byte for byte `git archive | gzip -c -n`. */
	req.format = GITALY__GET_ARCHIVE_REQUEST__FORMAT__TAR_GZ;
	assert_int_equal(run_archive(&req, file, &err), 0);
	assert_int_equal(sh(NULL, "cd %s/reads.git && git archive --format=tar --prefix=proj-main/ main | gzip -c -n | cmp - %s",
			    storage_path, file), 0);

	/* A path with an exclude. */
	req.format = GITALY__GET_ARCHIVE_REQUEST__FORMAT__TAR;
	req.path.data = (uint8_t *)"sub/";
	req.path.len = 4;
	ex[0].data = (uint8_t *)"sub/deep";
	ex[0].len = 8;
	req.exclude = ex;
	req.n_exclude = 1;
	assert_int_equal(run_archive(&req, file, &err), 0);
	assert_int_equal(sh(got, "tar tf %s | sort", file), 0);
	assert_string_equal(got, "proj-main/\nproj-main/sub/\nproj-main/sub/x.md");
	/* Elided: the path's contents sit right under the prefix. */
	req.elide_path = 1;
	assert_int_equal(run_archive(&req, file, &err), 0);
	assert_int_equal(sh(got, "tar tf %s | sort", file), 0);
	assert_string_equal(got, "proj-main/\nproj-main/x.md");
	req.elide_path = 0;

	/* Bad input, each refused before git archive runs. */
	ex[0].data = (uint8_t *)"nope";
	ex[0].len = 4;
	expect_error(run_archive(&req, file, &err), &err, STATUS_FAILED_PRECONDITION,
		     "exclude[0] doesn't exist");
	req.elide_path = 1;
	ex[0].data = (uint8_t *)"a.txt";
	ex[0].len = 5;
	expect_error(run_archive(&req, file, &err), &err, STATUS_INVALID_ARGUMENT,
		     "invalid exclude: \"a.txt\" is not a subdirectory of \"sub\"");
	req.elide_path = 0;
	req.n_exclude = 0;
	req.path.data = (uint8_t *)"missing";
	req.path.len = 7;
	expect_error(run_archive(&req, file, &err), &err, STATUS_FAILED_PRECONDITION,
		     "path doesn't exist");
	req.path.data = (uint8_t *)"../../etc";
	req.path.len = 9;
	expect_error(run_archive(&req, file, &err), &err, STATUS_INVALID_ARGUMENT,
		     "relative path escapes root directory");
	req.path.len = 0;
	req.format = 9;
	expect_error(run_archive(&req, file, &err), &err, STATUS_INVALID_ARGUMENT, "invalid format");
	req.format = 0;
	req.commit_id = "--output=/tmp/pwned";
	expect_error(run_archive(&req, file, &err), &err, STATUS_INVALID_ARGUMENT,
		     "invalid commitId: revision can't start with '-'");
	req.commit_id = "";
	expect_error(run_archive(&req, file, &err), &err, STATUS_INVALID_ARGUMENT,
		     "invalid commitId: empty revision");
}

static void snapshot_to(Gitaly__Repository *repo, const char *file)
{
	Gitaly__GetSnapshotRequest req = GITALY__GET_SNAPSHOT_REQUEST__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;

	req.repository = repo;
	if (invoke("GetSnapshot", &req.base, &call, &err) < 0)
		fail_msg("GetSnapshot: %s", err.message);
	save_stream(&call, file);
	fake_call_reset(&call);
}

#define SNAP_FILES                                                                              \
	"{ for f in HEAD packed-refs shallow; do test -f $f && echo $f; done; "                \
	"find refs branches 2>/dev/null; find objects -type f | "                               \
	"grep -E '^objects/[0-9a-f]{2}/[0-9a-f]{38}$|^objects/pack/pack-[0-9a-f]{40}\\.(pack|idx)$'; } | sort"

static void test_snapshot(void **state)
{
	Gitaly__GetSnapshotRequest req = GITALY__GET_SNAPSHOT_REQUEST__INIT;
	Gitaly__Repository pooled = reads_repo;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	char file[256], want[OUT_CAP], got[OUT_CAP];

	(void)state;
	make_reads_repo();
	/* A loose object, a loose ref, a nested ref directory, junk to skip. */
	assert_int_equal(sh(NULL, "set -e; cd %s/reads.git; echo loose | git hash-object -w --stdin >/dev/null;"
				  "git update-ref refs/heads/deep/er/branch main~1; mkdir -p custom_hooks;"
				  "echo x > custom_hooks/pre-receive; echo junk > objects/pack/garbage.pack;"
				  "ln -s HEAD refs/heads/symlinked",
			    storage_path), 0);
	snprintf(file, sizeof(file), "%s/snap.tar", tmp);
	snapshot_to(&reads_repo, file);
	assert_int_equal(sh(want, "cd %s/reads.git && " SNAP_FILES " | grep -v symlinked", storage_path), 0);
	assert_int_equal(sh(got, "tar tf %s | sed 's|/$||' | sort", file), 0);
	assert_string_equal(got, want);
	assert_null(strstr(got, "config"));
	/* Unpacked, with a fresh config, it is the same repository. */
	assert_int_equal(sh(NULL, "set -e; rm -rf %s/restored.git; mkdir %s/restored.git; cd %s/restored.git;"
				  "tar xmf %s; git init -q --bare .; git fsck --no-progress --no-dangling;"
				  "test \"$(git for-each-ref)\" = \"$(git --git-dir=%s/reads.git for-each-ref)\";"
				  "for f in $(find . -type f -path './objects/*'); do cmp $f %s/reads.git/$f; done",
			    tmp, tmp, tmp, file, storage_path, storage_path), 0);

	/* Objects of an alternate inside the storage come along as local ones. */
	assert_int_equal(sh(NULL, "set -e; rm -rf %s/pooled.git; git init -q --bare %s/pooled.git;"
				  "echo ../../reads.git/objects > %s/pooled.git/objects/info/alternates;"
				  "git --git-dir=%s/pooled.git update-ref refs/heads/main $(git --git-dir=%s/reads.git rev-parse main)",
			    storage_path, storage_path, storage_path, storage_path, storage_path), 0);
	pooled.relative_path = "pooled.git";
	snapshot_to(&pooled, file);
	assert_int_equal(sh(NULL, "set -e; rm -rf %s/restored2.git; mkdir %s/restored2.git; cd %s/restored2.git;"
				  "tar xmf %s; git init -q --bare .; test ! -e objects/info/alternates;"
				  "git rev-list --objects --all >/dev/null; git fsck --no-progress --no-dangling",
			    tmp, tmp, tmp, file), 0);

	pooled.relative_path = "nope.git";
	req.repository = &pooled;
	assert_int_equal(invoke("GetSnapshot", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	assert_int_equal(call.n_sent, 0);
	error_release(&err);
}

/* lic.git with one commit holding name (content copied from src, or text). */
static void license_repo(const char *name, const char *src, const char *text)
{
	assert_int_equal(sh(NULL, "set -e; w=%s/lw; rm -rf $w %s/lic.git; " GITC " init -q $w; cd $w;"
				  "if [ -n '%s' ]; then cp '%s' '%s'; else printf '%%s' '%s' > '%s'; fi;"
				  "echo readme > README.md; " GITC " add .; " GITC " commit -qm l;"
				  "git clone -q --bare $w %s/lic.git",
			    tmp, storage_path, src, src, name, text, name, storage_path),
			 0);
}

static Gitaly__FindLicenseResponse *find_license(struct rpc_call *call)
{
	Gitaly__FindLicenseRequest req = GITALY__FIND_LICENSE_REQUEST__INIT;
	static Gitaly__Repository lic = { .base = PROTOBUF_C_MESSAGE_INIT(&gitaly__repository__descriptor),
					  .storage_name = "default", .relative_path = "lic.git" };
	struct error err = ERROR_INIT;

	req.repository = &lic;
	if (invoke("FindLicense", &req.base, call, &err) < 0)
		fail_msg("FindLicense: %s", err.message);
	assert_int_equal(call->n_sent, 1);
	return (Gitaly__FindLicenseResponse *)call->sent[0];
}

static const char mit_text[] =
	"MIT License\n\nCopyright (c) 2023 Someone\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\n"
	"of this software and associated documentation files (the \"Software\"), to deal\nin the Software without restriction, "
	"including without limitation the rights\nto use, copy, modify, merge, publish, distribute, sublicense, and/or sell\n"
	"copies of the Software.\n\nThe above copyright notice and this permission notice shall be included in all\n"
	"copies or substantial portions of the Software.\n\nTHE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND.\n";

static void test_find_license(void **state)
{
	static const struct { const char *file, *name, *want, *full, *nick; } cases[] = {
		{ "/usr/share/common-licenses/Apache-2.0", "LICENSE", "apache-2.0", "Apache License 2.0", "" },
		{ "/usr/share/common-licenses/GPL-2", "COPYING", "gpl-2.0", "GNU General Public License v2.0 only", "GNU GPLv2" },
		{ "/usr/share/common-licenses/GPL-3", "LICENSE.txt", "gpl-3.0", "GNU General Public License v3.0 only", "GNU GPLv3" },
		{ "/usr/share/common-licenses/LGPL-2.1", "COPYING.LESSER", "lgpl-2.1", "GNU Lesser General Public License v2.1 only", "GNU LGPLv2.1" },
		{ "/usr/share/common-licenses/LGPL-3", "LICENSE", "lgpl-3.0", "GNU Lesser General Public License v3.0 only", "GNU LGPLv3" },
		{ "/usr/share/common-licenses/MPL-2.0", "LICENSE.md", "mpl-2.0", "Mozilla Public License 2.0", "" },
		{ "/usr/share/common-licenses/BSD", "license", "bsd-3-clause", "BSD 3-Clause \"New\" or \"Revised\" License", "" },
		{ "/usr/share/common-licenses/CC0-1.0", "LICENSE", "cc0-1.0", "Creative Commons Zero v1.0 Universal", "" },
	};
	struct rpc_call call;
	Gitaly__FindLicenseResponse *r;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (access(cases[i].file, R_OK) != 0)
			continue;
		license_repo(cases[i].name, cases[i].file, "");
		r = find_license(&call);
		assert_string_equal(r->license_short_name, cases[i].want);
		assert_string_equal(r->license_name, cases[i].full);
		assert_string_equal(r->license_nickname, cases[i].nick);
		assert_string_equal(r->license_path, cases[i].name);
		fake_call_reset(&call);
	}
	license_repo("LICENSE", "", mit_text);
	r = find_license(&call);
	assert_string_equal(r->license_short_name, "mit");
	assert_string_equal(r->license_name, "MIT License");
	assert_string_equal(r->license_url, "https://opensource.org/licenses/MIT");
	assert_string_equal(r->license_path, "LICENSE");
	fake_call_reset(&call);

	/* A license file nobody recognises: "other". */
	license_repo("LICENSE-custom", "", "You may do as you please, mostly.\n");
	r = find_license(&call);
	assert_string_equal(r->license_short_name, "other");
	assert_string_equal(r->license_name, "Other");
	assert_string_equal(r->license_nickname, "LICENSE");
	assert_string_equal(r->license_path, "LICENSE-custom");
	fake_call_reset(&call);

	/* No license file at all, and no HEAD: empty answers. */
	license_repo("main.c", "", "int main(void) { return 0; }\n");
	r = find_license(&call);
	assert_string_equal(r->license_short_name, "");
	assert_string_equal(r->license_path, "");
	fake_call_reset(&call);
	assert_int_equal(sh(NULL, "rm -rf %s/lic.git && git init -q --bare %s/lic.git", storage_path, storage_path), 0);
	r = find_license(&call);
	assert_string_equal(r->license_short_name, "");
	fake_call_reset(&call);

	/* The file-name rule. */
	assert_true(repo_license_file_name("LICENSE"));
	assert_true(repo_license_file_name("licence.md"));
	assert_true(repo_license_file_name("COPYING"));
	assert_true(repo_license_file_name("MIT-LICENSE.txt"));
	assert_true(repo_license_file_name("gpl-3.0.txt"));
	assert_false(repo_license_file_name("README.md"));
	assert_true(repo_license_file_name("licenses_helper.go"));
	assert_false(repo_license_file_name("submit.c"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fsck),
		cmocka_unit_test(test_objects_size),
		cmocka_unit_test(test_file_attributes),
		cmocka_unit_test(test_info_attributes),
		cmocka_unit_test(test_search_by_name),
		cmocka_unit_test(test_search_by_content),
		cmocka_unit_test(test_create_bundle),
		cmocka_unit_test(test_create_bundle_from_ref_list),
		cmocka_unit_test(test_raw_changes),
		cmocka_unit_test(test_archive),
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_find_license),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
