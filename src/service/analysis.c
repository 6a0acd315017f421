/*
 * gitaly.AnalysisService: CheckBlobsGenerated. A bidi stream: each request
 * message names (revision, path) pairs; every revision must resolve to a
 * blob, whose first 2048 bytes and path go through go-enry's generated-file
 * rules (analysis_generated.c). Answers are batched with upstream's 1 MiB
 * chunker and flushed once per request message, so each request gets at
 * least one response message.
 */
#include "service/analysis.h"

#include <stdlib.h>
#include <string.h>

#include "analysis.pb-c.h"
#include "git/odb.h"
#include "git/repo_cache.h"
#include "git/revision.h"
#include "service/util.h"

#define BATCH_MAX_BYTES ((size_t)1024 * 1024)

struct answers {
	Gitaly__CheckBlobsGeneratedResponse__Blob *items;
	Gitaly__CheckBlobsGeneratedResponse__Blob **ptrs;
	size_t n, alloc, bytes;
};

static int answers_flush(struct rpc_call *call, struct answers *a, struct error *err)
{
	Gitaly__CheckBlobsGeneratedResponse resp = GITALY__CHECK_BLOBS_GENERATED_RESPONSE__INIT;
	int ret;

	if (!a->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		a->ptrs[i] = &a->items[i];
	resp.n_blobs = a->n;
	resp.blobs = a->ptrs;
	ret = rpc_call_send(call, &resp.base, err);
	a->n = 0;
	a->bytes = 0;
	return ret;
}

/* revision is borrowed from the request, which outlives the flush. */
static int answers_add(struct rpc_call *call, struct answers *a, ProtobufCBinaryData revision,
		       int generated, struct error *err)
{
	Gitaly__CheckBlobsGeneratedResponse__Blob b =
		GITALY__CHECK_BLOBS_GENERATED_RESPONSE__BLOB__INIT;
	size_t sz;

	b.revision = revision;
	b.generated = generated ? 1 : 0;
	sz = protobuf_c_message_get_packed_size(&b.base);
	if (a->n && a->bytes + sz >= BATCH_MAX_BYTES && answers_flush(call, a, err) < 0)
		return -1;
	if (a->n == a->alloc) {
		size_t na = a->alloc ? a->alloc * 2 : 32;
		void *ni = realloc(a->items, na * sizeof(*a->items));
		void *np;

		if (!ni)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		a->items = ni;
		np = realloc(a->ptrs, na * sizeof(*a->ptrs));
		if (!np)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		a->ptrs = np;
		a->alloc = na;
	}
	a->items[a->n++] = b;
	a->bytes += sz;
	return 0;
}

static int validate(const Gitaly__CheckBlobsGeneratedRequest *req, struct error *err)
{
	if (req->n_blobs == 0)
		return error_set(err, STATUS_INVALID_ARGUMENT, "validating request: empty blobs");
	for (size_t i = 0; i < req->n_blobs; i++) {
		const Gitaly__CheckBlobsGeneratedRequest__Blob *b = req->blobs[i];

		if (revision_validate((const char *)b->revision.data, b->revision.len,
				      REVISION_ALLOW_PATH, err) < 0)
			return error_prefix(err, "validating request");
		if (b->path.len == 0)
			return error_set(err, STATUS_INVALID_ARGUMENT,
					 "validating request: empty path");
	}
	return 0;
}

static int check_one(const struct repo_handle *repo,
		     const Gitaly__CheckBlobsGeneratedRequest__Blob *b, int *generated,
		     struct error *err)
{
	char *rev = malloc(b->revision.len + 1), oid[ODB_OID_MAX];
	struct odb_object obj = { 0 };
	size_t n;
	int found, ret = -1;

	if (!rev)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	memcpy(rev, b->revision.data, b->revision.len);
	rev[b->revision.len] = 0; /* validated: no NUL inside */
	found = odb_h_resolve(repo, rev, oid, err);
	if (found > 0)
		found = odb_h_read(repo, oid, &obj, err);
	if (found == 0) {
		error_set(err, STATUS_INTERNAL, "reading object: object not found");
		goto out;
	}
	if (found < 0) {
		error_prefix(err, "reading object");
		goto out;
	}
	if (obj.type != GIT_OBJECT_BLOB) {
		error_set(err, STATUS_INVALID_ARGUMENT, "object is not a blob");
		goto out;
	}
	n = obj.len;
	if (n > ANALYSIS_CONTENT_PREFIX)
		n = ANALYSIS_CONTENT_PREFIX;
	*generated = analysis_is_generated((const char *)b->path.data, b->path.len,
					   (const unsigned char *)obj.data, n);
	ret = 0;
out:
	odb_object_release(&obj);
	free(rev);
	return ret;
}

static int check_blobs_generated_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__CheckBlobsGeneratedRequest *req =
		(const Gitaly__CheckBlobsGeneratedRequest *)rpc_call_request(call);
	struct service_git_env env = { NULL, NULL };
	struct answers a = { NULL, NULL, 0, 0, 0 };
	struct repo_handle repo = { NULL, NULL };
	ProtobufCMessage *next = NULL;
	char *path = NULL;
	int rc, ret = -1;

	if (!req)
		return error_set(err, STATUS_INTERNAL, "receiving first request: EOF");
	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&env, path, req->repository, err) < 0)
		goto out;
	if (repo_cache_get_handle(path, env.object_directory, env.alternates, &repo, err) < 0) {
		error_prefix(err, "retrieving object reader");
		goto out;
	}
	for (;;) {
		int generated = 0;

		if (validate(req, err) < 0)
			goto out;
		for (size_t i = 0; i < req->n_blobs; i++) {
			if (check_one(&repo, req->blobs[i], &generated, err) < 0 ||
			    answers_add(call, &a, req->blobs[i]->revision, generated, err) < 0)
				goto out;
		}
		if (answers_flush(call, &a, err) < 0)
			goto out;
		rc = rpc_call_recv(call, &next, err);
		if (rc < 0)
			goto out;
		if (rc == 0)
			break;
		req = (const Gitaly__CheckBlobsGeneratedRequest *)next;
	}
	ret = 0;
out:
	free(a.items);
	free(a.ptrs);
	repo_cache_put_handle(&repo);
	service_git_env_release(&env);
	free(path);
	return ret;
}

static const struct rpc_method analysis_methods[] = {
	{ "CheckBlobsGenerated", RPC_BIDI_STREAM, &gitaly__check_blobs_generated_request__descriptor,
	  &gitaly__check_blobs_generated_response__descriptor, check_blobs_generated_rpc,
	  RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY },
};

const struct rpc_service *analysis_service(struct service_deps *deps)
{
	static struct rpc_service svc;

	svc.name = "gitaly.AnalysisService";
	svc.methods = analysis_methods;
	svc.n_methods = sizeof(analysis_methods) / sizeof(analysis_methods[0]);
	svc.data = deps;
	return &svc;
}
