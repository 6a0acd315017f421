/*
 * RefService handlers driven through a fake call context with the real
 * locator, on a repository generated here with thousands of refs: the
 * method table against ref.proto, listings compared with git for-each-ref
 * (same sort), 20-per-message chunking, upstream's pagination rules,
 * lookups (ambiguous and missing names), the typed FindTag detail,
 * UpdateReferences over a client stream and DeleteRefs by prefix, and the
 * object-id validation messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "errors.pb-c.h"
#include "ref.pb-c.h"
#include "service/ref.h"
#include "service/ref_internal.h"
#include "status.pb-c.h"
#include "../support/shell.h"

/* A call context standing in for the gRPC runtime. */
struct rpc_call {
	const ProtobufCMessage *request;
	void *data;
	const ProtobufCMessage **stream; /* further client messages */
	size_t n_stream, next;
	ProtobufCMessage **sent;
	size_t n_sent;
};

const ProtobufCMessage *rpc_call_request(struct rpc_call *call)
{
	return call->request;
}

void *rpc_call_service_data(struct rpc_call *call)
{
	return call->data;
}

int rpc_call_recv(struct rpc_call *call, ProtobufCMessage **out, struct error *err)
{
	(void)err;
	if (call->next >= call->n_stream)
		return 0;
	*out = (ProtobufCMessage *)call->stream[call->next++];
	return 1;
}

int rpc_call_send(struct rpc_call *call, const ProtobufCMessage *msg, struct error *err)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(len + 1);

	(void)err;
	protobuf_c_message_pack(msg, buf);
	call->sent = realloc(call->sent, (call->n_sent + 1) * sizeof(*call->sent));
	call->sent[call->n_sent++] = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
	free(buf);
	return 0;
}

int64_t rpc_call_deadline_ms(struct rpc_call *call)
{
	(void)call;
	return INT64_MAX;
}

int rpc_call_cancelled(struct rpc_call *call)
{
	(void)call;
	return 0;
}

static void call_reset(struct rpc_call *call)
{
	for (size_t i = 0; i < call->n_sent; i++)
		protobuf_c_message_free_unpacked(call->sent[i], NULL);
	free(call->sent);
	memset(call, 0, sizeof(*call));
}

#define N_BRANCHES 2500
#define OUT_CAP (1 << 20)

static char tmp[] = "/tmp/ref-svc-XXXXXX";
static char storage[128], path[192];
static struct locator_storage storages[1];
static struct locator loc;
static struct config cfg;
static struct config_storage cfg_storages[1];
static struct service_deps deps;
static const struct rpc_service *svc;
static char *out_buf;
static char c_first[64], c_last[64];

/* Shell commands with stdout captured into out (OUT_CAP bytes at most). */
#define sh(out, ...) test_shell((out), OUT_CAP, 0, __VA_ARGS__)

static const struct rpc_method *method(const char *name)
{
	for (size_t i = 0; i < svc->n_methods; i++)
		if (!strcmp(svc->methods[i].name, name))
			return &svc->methods[i];
	fail_msg("no method %s", name);
	return NULL;
}

static int invoke(const char *name, const ProtobufCMessage *req, struct rpc_call *call,
		  struct error *err)
{
	call->request = req;
	call->data = svc->data;
	error_release(err);
	return method(name)->handler(call, err);
}

static Gitaly__Repository repo_msg = GITALY__REPOSITORY__INIT;

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	out_buf = malloc(OUT_CAP);
	snprintf(storage, sizeof(storage), "%s/st", tmp);
	snprintf(path, sizeof(path), "%s/r.git", storage);
	storages[0].name = "default";
	storages[0].path = storage;
	loc.storages = storages;
	loc.n_storages = 1;
	cfg_storages[0].name = "default";
	cfg_storages[0].path = storage;
	cfg.storages = cfg_storages;
	cfg.n_storages = 1;
	deps.cfg = &cfg;
	deps.locator = &loc;
	svc = ref_service(&deps);
	repo_msg.storage_name = "default";
	repo_msg.relative_path = "r.git";
	/* 40 commits with distinct committer dates, N_BRANCHES branches over
	 * them, an annotated tag, a lightweight tag. */
	if (sh(NULL,
	       "set -e; mkdir -p %s; git init -q --bare -b main %s; cd %s;"
	       "export GIT_AUTHOR_NAME=A GIT_AUTHOR_EMAIL=a@x GIT_COMMITTER_NAME=C GIT_COMMITTER_EMAIL=c@x;"
	       "t=$(git mktree </dev/null); p=''; : > ../cs;"
	       "for i in $(seq 1 40); do export GIT_COMMITTER_DATE=\"$((1600000000 + (i * 7919) %% 40000)) +0000\";"
	       "  export GIT_AUTHOR_DATE=$GIT_COMMITTER_DATE;"
	       "  if [ -n \"$p\" ]; then c=$(git commit-tree -p $p -m c$i $t); else c=$(git commit-tree -m c$i $t); fi;"
	       "  echo $c >> ../cs; p=$c; done;"
	       "awk -v n=%d '{c[NR]=$1} END {for (i=0;i<n;i++) printf \"create refs/heads/br%%05d %%s\\n\", i, c[(i*13)%%40+1];"
	       "  printf \"create refs/heads/main %%s\\n\", c[40]}' ../cs | git update-ref --stdin;"
	       "git tag -a -m 'annotated' v1 $(head -1 ../cs); git tag light $(sed -n 2p ../cs)",
	       storage, path, path, N_BRANCHES) != 0)
		return -1;
	sh(out_buf, "head -1 %s/cs", storage);
	memcpy(c_first, out_buf, 40);
	sh(out_buf, "tail -1 %s/cs", storage);
	memcpy(c_last, out_buf, 40);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(out_buf);
	return sh(NULL, "rm -rf %s", tmp);
}

static void test_table(void **state)
{
	const ProtobufCServiceDescriptor *d = &gitaly__ref_service__descriptor;

	(void)state;
	assert_string_equal(svc->name, "gitaly.RefService");
	assert_int_equal(svc->n_methods, d->n_methods);
	for (unsigned i = 0; i < d->n_methods; i++) {
		const struct rpc_method *m = method(d->methods[i].name);

		assert_ptr_equal(m->request, d->methods[i].input);
		assert_ptr_equal(m->response, d->methods[i].output);
		assert_non_null(m->handler);
	}
	assert_int_equal(method("UpdateReferences")->type, RPC_CLIENT_STREAM);
	assert_int_equal(method("UpdateReferences")->op, RPC_OP_MUTATOR);
	assert_int_equal(method("DeleteRefs")->op, RPC_OP_MUTATOR);
	assert_int_equal(method("ListRefs")->type, RPC_SERVER_STREAM);
	assert_int_equal(method("FindTag")->op, RPC_OP_ACCESSOR);
}

static void test_pager(void **state)
{
	Gitaly__PaginationParameter pp = GITALY__PAGINATION_PARAMETER__INIT;
	struct ref_pager p;
	struct error err = ERROR_INIT;

	(void)state;
	ref_pager_init(&p, NULL);
	assert_int_equal(ref_pager_step(&p, "a", 1), 1);
	assert_int_equal(ref_pager_finish(&p, &err), 0);

	pp.limit = 0;
	ref_pager_init(&p, &pp);
	assert_int_equal(ref_pager_step(&p, "a", 1), -1);

	pp.limit = 1;
	pp.page_token = "b";
	ref_pager_init(&p, &pp);
	assert_int_equal(ref_pager_step(&p, "a", 1), 0);
	assert_int_equal(ref_pager_step(&p, "b", 1), 0);
	assert_int_equal(ref_pager_step(&p, "c", 1), 1);
	assert_int_equal(ref_pager_step(&p, "d", 1), -1);
	assert_int_equal(ref_pager_finish(&p, &err), 0);

	pp.limit = -1;
	pp.page_token = "zz";
	ref_pager_init(&p, &pp);
	assert_int_equal(ref_pager_step(&p, "a", 1), 0);
	assert_int_equal(ref_pager_finish(&p, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "could not find page token");
	error_release(&err);
}

/* Appends "name oid\n" per branch of a FindLocalBranches answer. */
static size_t branches_text(struct rpc_call *call, char *buf)
{
	size_t len = 0;

	for (size_t i = 0; i < call->n_sent; i++) {
		Gitaly__FindLocalBranchesResponse *r = (Gitaly__FindLocalBranchesResponse *)call->sent[i];

		for (size_t j = 0; j < r->n_local_branches; j++) {
			Gitaly__Branch *b = r->local_branches[j];

			memcpy(buf + len, b->name.data, b->name.len);
			len += b->name.len;
			len += (size_t)snprintf(buf + len, OUT_CAP - len, " %s\n", b->target_commit->id);
		}
	}
	buf[len] = '\0';
	return len;
}

static void test_local_branches_vs_git(void **state)
{
	static const struct {
		int sort;
		const char *git;
	} cases[] = {
		{ GITALY__FIND_LOCAL_BRANCHES_REQUEST__SORT_BY__NAME, "refname" },
		{ GITALY__FIND_LOCAL_BRANCHES_REQUEST__SORT_BY__UPDATED_ASC, "committerdate" },
		{ GITALY__FIND_LOCAL_BRANCHES_REQUEST__SORT_BY__UPDATED_DESC, "-committerdate" },
	};
	char *got = malloc(OUT_CAP);

	(void)state;
	for (size_t c = 0; c < 3; c++) {
		Gitaly__FindLocalBranchesRequest req = GITALY__FIND_LOCAL_BRANCHES_REQUEST__INIT;
		struct rpc_call call = { 0 };
		struct error err = ERROR_INIT;

		req.repository = &repo_msg;
		req.sort_by = cases[c].sort;
		assert_int_equal(invoke("FindLocalBranches", &req.base, &call, &err), 0);
		assert_int_equal(call.n_sent, (N_BRANCHES + 1 + 19) / 20);
		for (size_t i = 0; i + 1 < call.n_sent; i++)
			assert_int_equal(((Gitaly__FindLocalBranchesResponse *)call.sent[i])->n_local_branches, 20);
		branches_text(&call, got);
		sh(out_buf, "git -C %s for-each-ref --sort=%s --format='%%(refname) %%(objectname)' refs/heads",
		   path, cases[c].git);
		assert_string_equal(got, out_buf);
		call_reset(&call);
	}
	free(got);
}

static void test_local_branches_pagination(void **state)
{
	Gitaly__FindLocalBranchesRequest req = GITALY__FIND_LOCAL_BRANCHES_REQUEST__INIT;
	Gitaly__PaginationParameter pp = GITALY__PAGINATION_PARAMETER__INIT;
	struct rpc_call call = { 0 };
	struct error err = ERROR_INIT;
	char *got = malloc(OUT_CAP);

	(void)state;
	req.repository = &repo_msg;
	req.pagination_params = &pp;
	pp.limit = 3;
	pp.page_token = "refs/heads/br00100";
	assert_int_equal(invoke("FindLocalBranches", &req.base, &call, &err), 0);
	branches_text(&call, got);
	sh(out_buf, "git -C %s for-each-ref --format='%%(refname) %%(objectname)' "
	   "refs/heads/br00101 refs/heads/br00102 refs/heads/br00103", path);
	assert_string_equal(got, out_buf);
	call_reset(&call);

	pp.limit = 0;
	pp.page_token = "";
	assert_int_equal(invoke("FindLocalBranches", &req.base, &call, &err), 0);
	assert_int_equal(call.n_sent, 0);
	call_reset(&call);

	pp.limit = 5;
	pp.page_token = "refs/heads/nope";
	assert_int_equal(invoke("FindLocalBranches", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_string_equal(err.message, "finding refs: sending lines: could not find page token");
	call_reset(&call);
	error_release(&err);
	free(got);
}

static void test_list_refs_vs_git(void **state)
{
	Gitaly__ListRefsRequest req = GITALY__LIST_REFS_REQUEST__INIT;
	ProtobufCBinaryData pat = { 5, (uint8_t *)"refs/" };
	struct rpc_call call = { 0 };
	struct error err = ERROR_INIT;
	char *got = malloc(OUT_CAP);
	size_t len = 0;

	(void)state;
	req.repository = &repo_msg;
	req.n_patterns = 1;
	req.patterns = &pat;
	req.peel_tags = 1;
	req.head = 1;
	assert_int_equal(invoke("ListRefs", &req.base, &call, &err), 0);
	for (size_t i = 0; i < call.n_sent; i++) {
		Gitaly__ListRefsResponse *r = (Gitaly__ListRefsResponse *)call.sent[i];

		for (size_t j = 0; j < r->n_references; j++) {
			memcpy(got + len, r->references[j]->name.data, r->references[j]->name.len);
			len += r->references[j]->name.len;
			len += (size_t)snprintf(got + len, OUT_CAP - len, " %s %s\n", r->references[j]->target,
					       r->references[j]->peeled_target);
		}
	}
	got[len] = '\0';
	sh(out_buf, "cd %s && echo \"HEAD $(git rev-parse HEAD) \" && "
	   "git for-each-ref --format='%%(refname) %%(objectname) %%(*objectname)' refs/", path);
	assert_string_equal(got, out_buf);
	assert_int_equal(((Gitaly__ListRefsResponse *)call.sent[0])->n_references, 21);
	call_reset(&call);
	free(got);
}

static void test_walk_patterns_vs_git(void **state)
{
	static const char *const sets[][3] = {
		{ "refs/heads/br0001", "refs/tags", NULL },
		{ "refs/heads/br0001/", "refs/heads/br00200", NULL },
		{ "refs/", NULL, NULL },
		{ "refs/nothing", NULL, NULL },
	};
	char *got = malloc(OUT_CAP);

	(void)state;
	for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
		Gitaly__ListRefsRequest req = GITALY__LIST_REFS_REQUEST__INIT;
		ProtobufCBinaryData pats[3];
		struct rpc_call call = { 0 };
		struct error err = ERROR_INIT;
		char args[256] = "";
		size_t len = 0, n = 0;

		for (; n < 3 && sets[s][n]; n++) {
			pats[n].data = (uint8_t *)sets[s][n];
			pats[n].len = strlen(sets[s][n]);
			strncat(args, " ", sizeof(args) - strlen(args) - 1);
			strncat(args, sets[s][n], sizeof(args) - strlen(args) - 1);
		}
		req.repository = &repo_msg;
		req.n_patterns = n;
		req.patterns = pats;
		assert_int_equal(invoke("ListRefs", &req.base, &call, &err), 0);
		for (size_t i = 0; i < call.n_sent; i++) {
			Gitaly__ListRefsResponse *r = (Gitaly__ListRefsResponse *)call.sent[i];

			for (size_t j = 0; j < r->n_references; j++) {
				memcpy(got + len, r->references[j]->name.data, r->references[j]->name.len);
				len += r->references[j]->name.len;
				got[len++] = '\n';
			}
		}
		got[len] = '\0';
		sh(out_buf, "git -C %s for-each-ref --format='%%(refname)'%s", path, args);
		assert_string_equal(got, out_buf);
		call_reset(&call);
	}
	free(got);
}

static void test_lookups(void **state)
{
	Gitaly__FindBranchRequest fb = GITALY__FIND_BRANCH_REQUEST__INIT;
	Gitaly__RefExistsRequest re = GITALY__REF_EXISTS_REQUEST__INIT;
	Gitaly__FindDefaultBranchNameRequest dn = GITALY__FIND_DEFAULT_BRANCH_NAME_REQUEST__INIT;
	struct rpc_call call = { 0 };
	struct error err = ERROR_INIT;
	Gitaly__FindBranchResponse *br;

	(void)state;
	fb.repository = &repo_msg;
	fb.name.data = (uint8_t *)"main";
	fb.name.len = 4;
	assert_int_equal(invoke("FindBranch", &fb.base, &call, &err), 0);
	br = (Gitaly__FindBranchResponse *)call.sent[0];
	assert_string_equal(br->branch->target_commit->id, c_last);
	assert_int_equal(br->branch->target_commit->subject.len, 3);
	assert_memory_equal(br->branch->target_commit->subject.data, "c40", 3);
	call_reset(&call);

	/* "br" only exists as a prefix of br00000... in for-each-ref's eyes */
	assert_int_equal(sh(NULL, "git -C %s update-ref refs/heads/dir/leaf %s", path, c_first), 0);
	fb.name.data = (uint8_t *)"dir";
	fb.name.len = 3;
	assert_int_equal(invoke("FindBranch", &fb.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "target reference is ambiguous: reference is ambiguous: "
					 "conflicts with \"refs/heads/dir/leaf\"");
	call_reset(&call);
	/* glob characters make it a for-each-ref pattern, as upstream */
	fb.name.data = (uint8_t *)"br0000*";
	fb.name.len = 7;
	assert_int_equal(invoke("FindBranch", &fb.base, &call, &err), -1);
	assert_string_equal(err.message, "target reference is ambiguous: reference is ambiguous: "
					 "conflicts with \"refs/heads/br00000\"");
	call_reset(&call);
	fb.name.data = (uint8_t *)"d*";
	fb.name.len = 2;
	assert_int_equal(invoke("FindBranch", &fb.base, &call, &err), 0);
	assert_null(((Gitaly__FindBranchResponse *)call.sent[0])->branch);
	call_reset(&call);
	assert_int_equal(sh(NULL, "git -C %s update-ref -d refs/heads/dir/leaf", path), 0);
	fb.name.data = (uint8_t *)"missing";
	fb.name.len = 7;
	assert_int_equal(invoke("FindBranch", &fb.base, &call, &err), 0);
	assert_null(((Gitaly__FindBranchResponse *)call.sent[0])->branch);
	call_reset(&call);

	re.repository = &repo_msg;
	re.ref.data = (uint8_t *)"refs/tags/v1";
	re.ref.len = 12;
	assert_int_equal(invoke("RefExists", &re.base, &call, &err), 0);
	assert_true(((Gitaly__RefExistsResponse *)call.sent[0])->value);
	call_reset(&call);
	re.ref.data = (uint8_t *)"refs/tags/v2";
	assert_int_equal(invoke("RefExists", &re.base, &call, &err), 0);
	assert_false(((Gitaly__RefExistsResponse *)call.sent[0])->value);
	call_reset(&call);

	dn.repository = &repo_msg;
	assert_int_equal(invoke("FindDefaultBranchName", &dn.base, &call, &err), 0);
	assert_int_equal(((Gitaly__FindDefaultBranchNameResponse *)call.sent[0])->name.len, 15);
	call_reset(&call);
	error_release(&err);
}

static void test_find_tag_detail(void **state)
{
	Gitaly__FindTagRequest req = GITALY__FIND_TAG_REQUEST__INIT;
	struct rpc_call call = { 0 };
	struct error err = ERROR_INIT;
	Gitaly__FindTagError *d;
	Gitaly__FindTagResponse *r;

	(void)state;
	req.repository = &repo_msg;
	req.tag_name.data = (uint8_t *)"v1";
	req.tag_name.len = 2;
	assert_int_equal(invoke("FindTag", &req.base, &call, &err), 0);
	r = (Gitaly__FindTagResponse *)call.sent[0];
	assert_memory_equal(r->tag->message.data, "annotated", 9);
	assert_int_equal(r->tag->message.len, 9);
	assert_string_equal(r->tag->target_commit->id, c_first);
	call_reset(&call);

	req.tag_name.data = (uint8_t *)"nope";
	req.tag_name.len = 4;
	assert_int_equal(invoke("FindTag", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	assert_string_equal(err.message, "tag does not exist");
	assert_int_equal(err.n_details, 1);
	assert_string_equal(err.details[0].type_url, "type.googleapis.com/gitaly.FindTagError");
	d = gitaly__find_tag_error__unpack(NULL, err.details[0].len, err.details[0].value);
	assert_non_null(d);
	assert_int_equal(d->error_case, GITALY__FIND_TAG_ERROR__ERROR_TAG_NOT_FOUND);
	assert_int_equal(d->tag_not_found->reference_name.len, 14);
	assert_memory_equal(d->tag_not_found->reference_name.data, "refs/tags/nope", 14);
	gitaly__find_tag_error__free_unpacked(d, NULL);
	call_reset(&call);
	error_release(&err);
}

static void test_update_and_delete(void **state)
{
	Gitaly__UpdateReferencesRequest first = GITALY__UPDATE_REFERENCES_REQUEST__INIT;
	Gitaly__UpdateReferencesRequest second = GITALY__UPDATE_REFERENCES_REQUEST__INIT;
	Gitaly__UpdateReferencesRequest__Update u1 = GITALY__UPDATE_REFERENCES_REQUEST__UPDATE__INIT;
	Gitaly__UpdateReferencesRequest__Update u2 = GITALY__UPDATE_REFERENCES_REQUEST__UPDATE__INIT;
	Gitaly__UpdateReferencesRequest__Update *l1[1] = { &u1 }, *l2[1] = { &u2 };
	const ProtobufCMessage *stream[1] = { &second.base };
	Gitaly__DeleteRefsRequest del = GITALY__DELETE_REFS_REQUEST__INIT;
	ProtobufCBinaryData keep[1] = { { 11, (uint8_t *)"refs/heads/" } };
	struct rpc_call call = { 0 };
	struct error err = ERROR_INIT;

	(void)state;
	first.repository = &repo_msg;
	first.n_updates = 1;
	first.updates = l1;
	u1.reference = (ProtobufCBinaryData){ 14, (uint8_t *)"refs/heads/new" };
	u1.new_object_id = (ProtobufCBinaryData){ 40, (uint8_t *)c_first };
	second.n_updates = 1;
	second.updates = l2;
	u2.reference = (ProtobufCBinaryData){ 21, (uint8_t *)"refs/merge-requests/1" };
	u2.new_object_id = (ProtobufCBinaryData){ 40, (uint8_t *)c_last };
	call.stream = stream;
	call.n_stream = 1;
	assert_int_equal(invoke("UpdateReferences", &first.base, &call, &err), 0);
	assert_int_equal(call.n_sent, 1);
	sh(out_buf, "git -C %s rev-parse refs/heads/new refs/merge-requests/1", path);
	assert_memory_equal(out_buf, c_first, 40);
	assert_memory_equal(out_buf + 41, c_last, 40);
	call_reset(&call);

	/* the old value no longer matches: nothing happens, typed detail */
	u1.old_object_id = (ProtobufCBinaryData){ 40, (uint8_t *)c_last };
	first.n_updates = 1;
	assert_int_equal(invoke("UpdateReferences", &first.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_ABORTED);
	assert_int_equal(err.n_details, 1);
	assert_string_equal(err.details[0].type_url, "type.googleapis.com/gitaly.UpdateReferencesError");
	call_reset(&call);

	/* delete everything but branches */
	del.repository = &repo_msg;
	del.n_except_with_prefix = 1;
	del.except_with_prefix = keep;
	assert_int_equal(invoke("DeleteRefs", &del.base, &call, &err), 0);
	sh(out_buf, "git -C %s for-each-ref --format='%%(refname)' | grep -v ^refs/heads/ | wc -l", path);
	assert_string_equal(out_buf, "0\n");
	sh(out_buf, "git -C %s for-each-ref --format='%%(refname)' refs/heads | wc -l", path);
	assert_int_equal(atoi(out_buf), N_BRANCHES + 2);
	call_reset(&call);
	error_release(&err);
}

static void test_validate_hex(void **state)
{
	struct error err = ERROR_INIT;

	(void)state;
	assert_int_equal(ref_validate_hex("0123456789abcdef0123456789abcdef01234567", "sha1", "", &err), 0);
	assert_int_equal(ref_validate_hex("abc", "sha1", "p: ", &err), -1);
	assert_string_equal(err.message, "p: invalid object ID: \"abc\", expected length 40, got 3");
	assert_int_equal(ref_validate_hex("0123456789ABCDEF0123456789abcdef01234567", NULL, "", &err), -1);
	assert_string_equal(err.message, "invalid object ID: \"0123456789ABCDEF0123456789abcdef01234567\", invalid character 'A'");
	assert_int_equal(ref_validate_hex("0123456789abcdef0123456789abcdef01234567", "sha256", "", &err), -1);
	assert_string_equal(err.message, "invalid object ID: \"0123456789abcdef0123456789abcdef01234567\", expected length 64, got 40");
	error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_pager),
		cmocka_unit_test(test_local_branches_vs_git),
		cmocka_unit_test(test_local_branches_pagination),
		cmocka_unit_test(test_list_refs_vs_git),
		cmocka_unit_test(test_walk_patterns_vs_git),
		cmocka_unit_test(test_lookups),
		cmocka_unit_test(test_find_tag_detail),
		cmocka_unit_test(test_update_and_delete),
		cmocka_unit_test(test_validate_hex),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
