/*
 * RepositoryService handlers driven through a fake call context with the
 * real locator: validation codes and messages come first and change nothing
 * on disk; RepositoryExists, CreateRepository/RemoveRepository, WriteRef
 * (HEAD, update with old-value check, delete), GetConfig chunking,
 * FindMergeBase, SetFullPath/FullPath, CalculateChecksum, sizes, the
 * method table (every proto method, NULL where unimplemented).
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
#define FIXTURE_TMP "/tmp/svc-rpc-XXXXXX"
#define FIXTURE_SERVICE "gitaly.RepositoryService"
#include "service_fixture.h"
#include "../support/shell.h"

#define OUT_CAP 65536

/* Shell commands with stdout captured into out (OUT_CAP bytes at most). */
#define sh(out, ...) test_shell((out), OUT_CAP, 1, __VA_ARGS__)

#define GITC "git -c user.name=T -c user.email=t@example.com -c init.defaultBranch=main"

static void make_repo(const char *rel)
{
	assert_int_equal(sh(NULL,
			    "set -e; w=%s/work; rm -rf $w; " GITC " init -q $w; cd $w;"
			    "echo one > f; " GITC " add f; " GITC " commit -qm one;"
			    "echo two > f; " GITC " commit -qam two;"
			    "git clone -q --bare $w %s/%s",
			    tmp, storage_path, rel),
			 0);
}

static void test_table(void **state)
{
	const ProtobufCServiceDescriptor *d = &gitaly__repository_service__descriptor;

	(void)state;
	/* Every proto method is listed, with matching message types. */
	assert_int_equal(fixture_svc->n_methods, d->n_methods);
	for (unsigned i = 0; i < d->n_methods; i++) {
		const struct rpc_method *m = method(d->methods[i].name);

		assert_ptr_equal(m->request, d->methods[i].input);
		assert_ptr_equal(m->response, d->methods[i].output);
	}
	assert_int_equal(method("GetConfig")->type, RPC_SERVER_STREAM);
	assert_int_equal(method("ObjectsSize")->type, RPC_CLIENT_STREAM);
	assert_int_equal(method("CreateBundleFromRefList")->type, RPC_BIDI_STREAM);
	assert_null(method("FetchRemote")->handler);
	assert_int_equal(method("OptimizeRepository")->op, RPC_OP_MAINTENANCE);
	assert_int_equal(method("RemoveAll")->scope, RPC_SCOPE_STORAGE);
	assert_int_equal(method("WriteRef")->op, RPC_OP_MUTATOR);
	assert_int_equal(method("RepositoryExists")->op, RPC_OP_ACCESSOR);
}

static void test_exists(void **state)
{
	Gitaly__RepositoryExistsRequest req = GITALY__REPOSITORY_EXISTS_REQUEST__INIT;
	Gitaly__Repository repo = GITALY__REPOSITORY__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;

	(void)state;
	make_repo("exists.git");
	req.repository = &repo;
	repo.storage_name = "default";
	repo.relative_path = "exists.git";
	assert_int_equal(invoke("RepositoryExists", &req.base, &call, &err), 0);
	assert_true(((Gitaly__RepositoryExistsResponse *)call.sent[0])->exists);
	fake_call_reset(&call);

	repo.relative_path = "missing.git";
	assert_int_equal(invoke("RepositoryExists", &req.base, &call, &err), 0);
	assert_int_equal(call.n_sent, 1);
	assert_false(((Gitaly__RepositoryExistsResponse *)call.sent[0])->exists);
	fake_call_reset(&call);

	repo.storage_name = "nope";
	assert_int_equal(invoke("RepositoryExists", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "storage name not found");
	error_release(&err);

	req.repository = NULL;
	assert_int_equal(invoke("RepositoryExists", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "repository not set");
	error_release(&err);
}

static void test_create_remove(void **state)
{
	Gitaly__CreateRepositoryRequest creq = GITALY__CREATE_REPOSITORY_REQUEST__INIT;
	Gitaly__RemoveRepositoryRequest rreq = GITALY__REMOVE_REPOSITORY_REQUEST__INIT;
	Gitaly__Repository repo = GITALY__REPOSITORY__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	char out[OUT_CAP];

	(void)state;
	repo.storage_name = "default";
	repo.relative_path = "group/created.git";
	creq.repository = &repo;
	creq.default_branch.data = (uint8_t *)"trunk";
	creq.default_branch.len = 5;

	/* Bad object format: nothing created. */
	creq.object_format = 7;
	assert_int_equal(invoke("CreateRepository", &creq.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "unknown object format: \"7\"");
	error_release(&err);
	assert_int_equal(sh(NULL, "test -e %s/group", storage_path), 1);

	/* Escaping path: nothing created. */
	repo.relative_path = "../outside.git";
	creq.object_format = GITALY__OBJECT_FORMAT__OBJECT_FORMAT_SHA1;
	assert_int_equal(invoke("CreateRepository", &creq.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "relative path escapes root directory");
	error_release(&err);
	assert_int_equal(sh(NULL, "test -e %s/outside.git", tmp), 1);

	repo.relative_path = "group/created.git";
	assert_int_equal(invoke("CreateRepository", &creq.base, &call, &err), 0);
	assert_int_equal(call.n_sent, 1);
	fake_call_reset(&call);
	assert_int_equal(sh(out, "git --git-dir=%s/group/created.git symbolic-ref HEAD",
			    storage_path),
			 0);
	assert_string_equal(out, "refs/heads/trunk");

	assert_int_equal(invoke("CreateRepository", &creq.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_ALREADY_EXISTS);
	assert_string_equal(err.message, "creating repository: repository exists already");
	error_release(&err);

	rreq.repository = &repo;
	repo.relative_path = "../other/group/created.git";
	assert_int_equal(invoke("RemoveRepository", &rreq.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "relative path escapes root directory");
	error_release(&err);
	assert_int_equal(sh(NULL, "test -d %s/group/created.git", storage_path), 0);
	repo.relative_path = "group/created.git";
	assert_int_equal(invoke("RemoveRepository", &rreq.base, &call, &err), 0);
	fake_call_reset(&call);
	assert_int_equal(sh(NULL, "test -e %s/group/created.git", storage_path), 1);
	assert_int_equal(invoke("RemoveRepository", &rreq.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	assert_string_equal(err.message, "repository does not exist");
	error_release(&err);
}

static int write_ref(const char *ref, const char *rev, const char *old, struct error *err)
{
	Gitaly__WriteRefRequest req = GITALY__WRITE_REF_REQUEST__INIT;
	Gitaly__Repository repo = GITALY__REPOSITORY__INIT;
	struct rpc_call call;
	int ret;

	repo.storage_name = "default";
	repo.relative_path = "refs.git";
	req.repository = &repo;
	req.ref.data = (uint8_t *)ref;
	req.ref.len = strlen(ref);
	req.revision.data = (uint8_t *)rev;
	req.revision.len = strlen(rev);
	req.old_revision.data = (uint8_t *)old;
	req.old_revision.len = old ? strlen(old) : 0;
	ret = invoke("WriteRef", &req.base, &call, err);
	if (ret == 0)
		assert_int_equal(call.n_sent, 1);
	fake_call_reset(&call);
	return ret;
}

static void expect_write_ref_error(const char *ref, const char *rev, const char *old, int code,
				   const char *message)
{
	struct error err = ERROR_INIT;

	assert_int_equal(write_ref(ref, rev, old, &err), -1);
	assert_int_equal(err.code, code);
	assert_string_equal(err.message, message);
	error_release(&err);
}

static void test_write_ref(void **state)
{
	struct error err = ERROR_INIT;
	char out[OUT_CAP], head[64], prev[64];
	const char *zero = "0000000000000000000000000000000000000000";

	(void)state;
	make_repo("refs.git");
	assert_int_equal(sh(head, "git --git-dir=%s/refs.git rev-parse main", storage_path), 0);
	assert_int_equal(sh(prev, "git --git-dir=%s/refs.git rev-parse main~1", storage_path), 0);

	expect_write_ref_error("", "main", NULL, STATUS_INVALID_ARGUMENT, "invalid ref: empty revision");
	expect_write_ref_error("refs/heads/x", "-main", NULL, STATUS_INVALID_ARGUMENT,
			       "invalid revision: revision can't start with '-'");
	expect_write_ref_error("refs/heads/x", "main", "a b", STATUS_INVALID_ARGUMENT,
			       "invalid OldRevision: revision can't contain whitespace");
	expect_write_ref_error("heads/x", "main", NULL, STATUS_INVALID_ARGUMENT,
			       "ref has to be a full reference");
	expect_write_ref_error("HEAD", "main", NULL, STATUS_INTERNAL,
			       "setting default branch: \"main\" is a malformed refname");
	/* Nothing changed by the failures above. */
	assert_int_equal(sh(out, "git --git-dir=%s/refs.git for-each-ref --format='%%(refname)'",
			    storage_path),
			 0);
	assert_string_equal(out, "refs/heads/main");

	assert_int_equal(write_ref("refs/heads/x", "main~1", NULL, &err), 0);
	assert_int_equal(sh(out, "git --git-dir=%s/refs.git rev-parse refs/heads/x", storage_path), 0);
	assert_string_equal(out, prev);

	/* Old value check: wrong old fails, right old succeeds, zero means "new". */
	assert_int_equal(write_ref("refs/heads/x", "main", head, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_non_null(strstr(err.message, "error when running update-ref command: "));
	error_release(&err);
	assert_int_equal(write_ref("refs/heads/x", "main", zero, &err), -1);
	error_release(&err);
	assert_int_equal(write_ref("refs/heads/x", "main", prev, &err), 0);
	assert_int_equal(sh(out, "git --git-dir=%s/refs.git rev-parse refs/heads/x", storage_path), 0);
	assert_string_equal(out, head);
	assert_int_equal(write_ref("refs/heads/y", "main", zero, &err), 0);

	/* Unknown revision. */
	assert_int_equal(write_ref("refs/heads/z", "nonexistent", NULL, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_string_equal(err.message, "resolving new revision: reference not found");
	error_release(&err);

	/* Zero new value deletes. */
	assert_int_equal(write_ref("refs/heads/y", zero, NULL, &err), 0);
	assert_int_equal(sh(NULL, "git --git-dir=%s/refs.git rev-parse --verify -q refs/heads/y",
			    storage_path),
			 1);

	/* HEAD becomes a symbolic ref. */
	assert_int_equal(write_ref("HEAD", "refs/heads/x", NULL, &err), 0);
	assert_int_equal(sh(out, "cat %s/refs.git/HEAD", storage_path), 0);
	assert_string_equal(out, "ref: refs/heads/x");

	/* A locked ref: Aborted. */
	assert_int_equal(sh(NULL, "touch %s/refs.git/refs/heads/x.lock", storage_path), 0);
	assert_int_equal(write_ref("refs/heads/x", "main~1", NULL, &err), -1);
	assert_int_equal(err.code, STATUS_ABORTED);
	assert_string_equal(err.message, "reference is locked already");
	error_release(&err);
}

static void test_get_config_chunks(void **state)
{
	Gitaly__GetConfigRequest req = GITALY__GET_CONFIG_REQUEST__INIT;
	Gitaly__Repository repo = GITALY__REPOSITORY__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	char want[OUT_CAP];
	size_t total = 0;

	(void)state;
	make_repo("config.git");
	/* Grow the config beyond one 128 KiB chunk. */
	assert_int_equal(sh(NULL, "cd %s/config.git && for i in $(seq 1 6000); do echo \"[x \\\"k$i\\\"] v = value-$i-padding-padding\"; done >> config",
			    storage_path),
			 0);
	assert_int_equal(sh(want, "stat -c %%s %s/config.git/config", storage_path), 0);
	repo.storage_name = "default";
	repo.relative_path = "config.git";
	req.repository = &repo;
	assert_int_equal(invoke("GetConfig", &req.base, &call, &err), 0);
	assert_true(call.n_sent >= 2);
	for (size_t i = 0; i < call.n_sent; i++) {
		size_t len = ((Gitaly__GetConfigResponse *)call.sent[i])->data.len;

		assert_true(len <= SERVICE_CHUNK_SIZE);
		if (i + 1 < call.n_sent)
			assert_int_equal(len, SERVICE_CHUNK_SIZE);
		total += len;
	}
	assert_int_equal(total, strtoull(want, NULL, 10));
	fake_call_reset(&call);

	assert_int_equal(sh(NULL, "rm %s/config.git/config", storage_path), 0);
	assert_int_equal(invoke("GetConfig", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	assert_non_null(strstr(err.message, "opening gitconfig: open "));
	assert_non_null(strstr(err.message, "/config.git/config: no such file or directory"));
	error_release(&err);
}

static void test_misc_handlers(void **state)
{
	Gitaly__FindMergeBaseRequest mb = GITALY__FIND_MERGE_BASE_REQUEST__INIT;
	Gitaly__SetFullPathRequest sfp = GITALY__SET_FULL_PATH_REQUEST__INIT;
	Gitaly__FullPathRequest fp = GITALY__FULL_PATH_REQUEST__INIT;
	Gitaly__CalculateChecksumRequest cs = GITALY__CALCULATE_CHECKSUM_REQUEST__INIT;
	Gitaly__RepositorySizeRequest rs = GITALY__REPOSITORY_SIZE_REQUEST__INIT;
	Gitaly__ObjectFormatRequest of = GITALY__OBJECT_FORMAT_REQUEST__INIT;
	Gitaly__HasLocalBranchesRequest hb = GITALY__HAS_LOCAL_BRANCHES_REQUEST__INIT;
	Gitaly__RepositoryInfoRequest ri = GITALY__REPOSITORY_INFO_REQUEST__INIT;
	Gitaly__Repository repo = GITALY__REPOSITORY__INIT;
	ProtobufCBinaryData revs[2] = { { 4, (uint8_t *)"main" }, { 6, (uint8_t *)"main~1" } };
	struct rpc_call call;
	struct error err = ERROR_INIT;
	char out[OUT_CAP];

	(void)state;
	make_repo("misc.git");
	repo.storage_name = "default";
	repo.relative_path = "misc.git";

	mb.repository = &repo;
	mb.n_revisions = 1;
	mb.revisions = revs;
	assert_int_equal(invoke("FindMergeBase", &mb.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "at least 2 revisions are required");
	error_release(&err);
	mb.n_revisions = 2;
	assert_int_equal(invoke("FindMergeBase", &mb.base, &call, &err), 0);
	assert_int_equal(sh(out, "git --git-dir=%s/misc.git rev-parse main~1", storage_path), 0);
	assert_string_equal(((Gitaly__FindMergeBaseResponse *)call.sent[0])->base, out);
	fake_call_reset(&call);

	sfp.repository = &repo;
	sfp.path = "";
	assert_int_equal(invoke("SetFullPath", &sfp.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "no path provided");
	error_release(&err);
	sfp.path = "my/project";
	assert_int_equal(invoke("SetFullPath", &sfp.base, &call, &err), 0);
	fake_call_reset(&call);
	fp.repository = &repo;
	assert_int_equal(invoke("FullPath", &fp.base, &call, &err), 0);
	assert_string_equal(((Gitaly__FullPathResponse *)call.sent[0])->path, "my/project");
	fake_call_reset(&call);

	cs.repository = &repo;
	assert_int_equal(invoke("CalculateChecksum", &cs.base, &call, &err), 0);
	assert_int_equal(strlen(((Gitaly__CalculateChecksumResponse *)call.sent[0])->checksum) > 30,
			 1);
	fake_call_reset(&call);

	rs.repository = &repo;
	assert_int_equal(invoke("RepositorySize", &rs.base, &call, &err), 0);
	assert_int_equal(sh(out, "find %s/misc.git -type f -printf '%%s\\n' | awk '{s+=$1} END {print int(s/1024)}'",
			    storage_path),
			 0);
	assert_int_equal(((Gitaly__RepositorySizeResponse *)call.sent[0])->size,
			 strtoll(out, NULL, 10));
	fake_call_reset(&call);

	of.repository = &repo;
	assert_int_equal(invoke("ObjectFormat", &of.base, &call, &err), 0);
	assert_int_equal(((Gitaly__ObjectFormatResponse *)call.sent[0])->format,
			 GITALY__OBJECT_FORMAT__OBJECT_FORMAT_SHA1);
	fake_call_reset(&call);

	hb.repository = &repo;
	assert_int_equal(invoke("HasLocalBranches", &hb.base, &call, &err), 0);
	assert_true(((Gitaly__HasLocalBranchesResponse *)call.sent[0])->value);
	fake_call_reset(&call);

	ri.repository = &repo;
	assert_int_equal(invoke("RepositoryInfo", &ri.base, &call, &err), 0);
	{
		Gitaly__RepositoryInfoResponse *r = (Gitaly__RepositoryInfoResponse *)call.sent[0];

		assert_non_null(r->references);
		assert_non_null(r->objects);
		assert_true(r->size > 0);
		assert_true(r->objects->size > 0);
		assert_true(r->references->packed_size > 0);
	}
	fake_call_reset(&call);

	/* A missing repository: NotFound from the locator, for every handler. */
	repo.relative_path = "missing.git";
	assert_int_equal(invoke("CalculateChecksum", &cs.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	error_release(&err);
	assert_int_equal(invoke("RepositorySize", &rs.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	error_release(&err);
}

static void test_object_directory_size(void **state)
{
	Gitaly__GetObjectDirectorySizeRequest req = GITALY__GET_OBJECT_DIRECTORY_SIZE_REQUEST__INIT;
	Gitaly__Repository repo = GITALY__REPOSITORY__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	char out[OUT_CAP], hash[64], quarantine[256], other[256];

	(void)state;
	make_repo("objdir.git");
	repo.storage_name = "default";
	repo.relative_path = "objdir.git";
	req.repository = &repo;

	/* Upstream requires the object directory to be named. */
	assert_int_equal(invoke("GetObjectDirectorySize", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "object directory path is not set");
	error_release(&err);

	repo.git_object_directory = "objects/";
	assert_int_equal(invoke("GetObjectDirectorySize", &req.base, &call, &err), 0);
	assert_int_equal(sh(out, "find %s/objdir.git/objects -type f -printf '%%s\\n' | awk '{s+=$1} END {print int(s/1024)}'",
			    storage_path),
			 0);
	assert_int_equal(((Gitaly__GetObjectDirectorySizeResponse *)call.sent[0])->size,
			 strtoll(out, NULL, 10));
	fake_call_reset(&call);

	/* This repository's quarantine directory in +gitaly/tmp is accepted. */
	assert_int_equal(sh(hash, "printf %%s objdir.git | sha1sum | cut -c1-16"), 0);
	snprintf(quarantine, sizeof(quarantine), "../+gitaly/tmp/quarantine-%s-abc", hash);
	assert_int_equal(sh(NULL, "mkdir -p %s/+gitaly/tmp/quarantine-%s-abc && head -c 5000 /dev/zero > %s/+gitaly/tmp/quarantine-%s-abc/f",
			    storage_path, hash, storage_path, hash),
			 0);
	repo.git_object_directory = quarantine;
	assert_int_equal(invoke("GetObjectDirectorySize", &req.base, &call, &err), 0);
	assert_int_equal(((Gitaly__GetObjectDirectorySizeResponse *)call.sent[0])->size, 4);
	fake_call_reset(&call);

	/* Someone else's quarantine directory is not. */
	snprintf(other, sizeof(other), "../+gitaly/tmp/quarantine-0000000000000000-abc");
	assert_int_equal(sh(NULL, "mkdir -p %s/+gitaly/tmp/quarantine-0000000000000000-abc", storage_path), 0);
	repo.git_object_directory = other;
	assert_int_equal(invoke("GetObjectDirectorySize", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "not a valid relative path: "));
	error_release(&err);

	repo.git_object_directory = "objects/missing";
	assert_int_equal(invoke("GetObjectDirectorySize", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	assert_non_null(strstr(err.message, "object directory does not exist: \""));
	error_release(&err);
}

static void test_quarantine_environment(void **state)
{
	Gitaly__FindMergeBaseRequest mb = GITALY__FIND_MERGE_BASE_REQUEST__INIT;
	Gitaly__Repository repo = GITALY__REPOSITORY__INIT;
	char *alternates[] = { "objects" };
	char qcommit[128], head[128];
	ProtobufCBinaryData revs[2];
	struct rpc_call call;
	struct error err = ERROR_INIT;

	(void)state;
	make_repo("quarantine.git");
	/* A commit that exists only in the quarantine object directory. */
	assert_int_equal(sh(qcommit, "cd %s/quarantine.git && mkdir q &&"
				     "GIT_OBJECT_DIRECTORY=q GIT_ALTERNATE_OBJECT_DIRECTORIES=objects "
				     GITC " commit-tree -p main -m q 'main^{tree}'",
			    storage_path),
			 0);
	assert_int_equal(sh(head, "git --git-dir=%s/quarantine.git rev-parse main", storage_path), 0);
	revs[0].data = (uint8_t *)"main";
	revs[0].len = 4;
	revs[1].data = (uint8_t *)qcommit;
	revs[1].len = strlen(qcommit);
	repo.storage_name = "default";
	repo.relative_path = "quarantine.git";
	mb.repository = &repo;
	mb.revisions = revs;
	mb.n_revisions = 2;

	/* Without the quarantine, git cannot see the commit: no base. */
	assert_int_equal(invoke("FindMergeBase", &mb.base, &call, &err), 0);
	assert_string_equal(((Gitaly__FindMergeBaseResponse *)call.sent[0])->base, "");
	fake_call_reset(&call);

	repo.git_object_directory = "q";
	repo.git_alternate_object_directories = alternates;
	repo.n_git_alternate_object_directories = 1;
	assert_int_equal(invoke("FindMergeBase", &mb.base, &call, &err), 0);
	assert_string_equal(((Gitaly__FindMergeBaseResponse *)call.sent[0])->base, head);
	fake_call_reset(&call);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_exists),
		cmocka_unit_test(test_create_remove),
		cmocka_unit_test(test_write_ref),
		cmocka_unit_test(test_get_config_chunks),
		cmocka_unit_test(test_misc_handlers),
		cmocka_unit_test(test_object_directory_size),
		cmocka_unit_test(test_quarantine_environment),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
