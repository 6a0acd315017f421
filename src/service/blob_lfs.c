/*
 * The LFS pointer RPCs of gitaly.BlobService. Rails runs them on every push
 * with LFS enabled (on the quarantined objects), so candidates are narrowed
 * by size before any content is read: only blobs of at most 200 bytes can be
 * pointers (upstream's lfsPointerMaxSize), and the content check is
 * upstream's IsLFSPointer (odb_is_lfs_pointer).
 */
#include <stdlib.h>
#include <string.h>

#include "blob.pb-c.h"
#include "git/odb.h"
#include "service/blob_internal.h"

/*
 * Reads a candidate blob and adds it to the batch when it is a pointer.
 * Returns 1 when added, 0 when not a pointer, -1 on errors.
 */
static int send_if_pointer(struct blob_batch *b, const struct repo_handle *repo, const char *hex,
			   struct error *err)
{
	struct odb_object obj = { 0 };
	int found, ret = -1;

	found = odb_h_read(repo, hex, &obj, err);
	if (found == 0)
		error_set(err, STATUS_INTERNAL, "requesting object: object not found");
	if (found <= 0)
		goto out;
	if (obj.type != GIT_OBJECT_BLOB || !odb_is_lfs_pointer(obj.data, obj.len)) {
		ret = 0;
		goto out;
	}
	if (blob_batch_add(b, hex, (int64_t)obj.len, obj.data, obj.len, NULL, 0, err) < 0) {
		error_prefix(err, "sending LFS pointer chunk");
		goto out;
	}
	ret = 1;
out:
	odb_object_release(&obj);
	return ret;
}

/* What the listing callbacks read from and add to. */
struct blob_repo_batch {
	const struct blob_repo *r;
	struct blob_batch *b;
};

/* A full lowercase hex id of either format. */
static int full_hex(const char *s)
{
	size_t n = strlen(s);

	return (n == 40 || n == 64) && strspn(s, "0123456789abcdef") == n;
}

int blob_get_lfs_pointers_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__GetLFSPointersRequest *req =
		(const Gitaly__GetLFSPointersRequest *)rpc_call_request(call);
	struct blob_repo r;
	struct blob_batch b;
	int ret = -1;

	memset(&r, 0, sizeof(r));
	blob_batch_init(&b, call, BLOB_BATCH_GET_LFS);
	if (!req->repository)
		return blob_repo_open(deps, req->repository, &r, err);
	if (req->n_blob_ids == 0)
		return error_set(err, STATUS_INVALID_ARGUMENT, "empty BlobIds");
	if (blob_repo_open(deps, req->repository, &r, err) < 0)
		return -1;
	for (size_t i = 0; i < req->n_blob_ids; i++) {
		const char *id = req->blob_ids[i];
		git_object_t type;
		int64_t size;
		char oid[ODB_OID_MAX];
		int found;

		/* cat-file --batch-check resolves whatever it is given. */
		found = odb_h_resolve(&r.h, id, oid, err);
		if (found > 0)
			found = odb_h_header(&r.h, oid, &type, &size, err);
		if (found == 0) {
			struct strbuf q = STRBUF_INIT;

			service_go_quote(&q, id, strlen(id));
			error_set(err, STATUS_INTERNAL,
				  "retrieving object info for %s: object not found",
				  q.buf ? q.buf : "\"\"");
			strbuf_release(&q);
			goto out;
		}
		if (found < 0)
			goto out;
		if (type != GIT_OBJECT_BLOB || size > ODB_LFS_POINTER_MAX)
			continue;
		if (send_if_pointer(&b, &r.h, oid, err) < 0)
			goto out;
	}
	ret = blob_batch_flush(&b, err);
out:
	blob_batch_release(&b);
	blob_repo_close(&r);
	return ret;
}

/* A rev-list line ("<oid>[ <path>]") naming a candidate. */
static int list_lfs_line(void *arg, const char *line, size_t len, struct error *err)
{
	struct blob_repo_batch *rb = arg;
	char hex[ODB_OID_MAX];
	size_t hexlen = strcspn(line, " ");

	(void)len;
	if (hexlen != 40 && hexlen != 64)
		return error_set(err, STATUS_INTERNAL, "invalid rev-list line");
	memcpy(hex, line, hexlen);
	hex[hexlen] = 0;
	if (!full_hex(hex))
		return error_set(err, STATUS_INTERNAL, "invalid rev-list object id");
	return send_if_pointer(rb->b, &rb->r->h, hex, err);
}

int blob_list_lfs_pointers_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__ListLFSPointersRequest *req =
		(const Gitaly__ListLFSPointersRequest *)rpc_call_request(call);
	struct blob_repo r;
	struct blob_batch b;
	struct blob_repo_batch rb = { &r, &b };
	struct blob_scan scan = { list_lfs_line, &rb, req->limit, "rev-list pipeline command",
				  NULL };
	int ret = -1;

	memset(&r, 0, sizeof(r));
	blob_batch_init(&b, call, BLOB_BATCH_LIST_LFS);
	if (!req->repository)
		return blob_repo_open(deps, req->repository, &r, err);
	if (blob_validate_revisions(req->revisions, req->n_revisions, err) < 0)
		return -1;
	if (blob_repo_open(deps, req->repository, &r, err) < 0)
		return -1;
	if (blob_scan_run(call, blob_revlist_cmd(&r, req->revisions, req->n_revisions, 1), &scan,
			  err) == 0)
		ret = blob_batch_flush(&b, err);
	blob_batch_release(&b);
	blob_repo_close(&r);
	return ret;
}

/* A --batch-check line; only blobs small enough to be pointers are read. */
static int list_all_lfs_line(void *arg, const char *line, size_t len, struct error *err)
{
	struct blob_repo_batch *rb = arg;
	char hex[ODB_OID_MAX + 8], type[16];
	int64_t size;

	(void)len;
	if (blob_parse_batch_check(line, hex, sizeof(hex), type, sizeof(type), &size) < 0 ||
	    !full_hex(hex))
		return error_set(err, STATUS_INTERNAL, "parsing object info: invalid line");
	if (strcmp(type, "blob") || size > ODB_LFS_POINTER_MAX)
		return 0;
	return send_if_pointer(rb->b, &rb->r->h, hex, err);
}

int blob_list_all_lfs_pointers_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__ListAllLFSPointersRequest *req =
		(const Gitaly__ListAllLFSPointersRequest *)rpc_call_request(call);
	struct blob_repo r;
	struct blob_batch b;
	struct blob_repo_batch rb = { &r, &b };
	struct blob_scan scan = { list_all_lfs_line, &rb, req->limit, "cat-file failed", NULL };
	int ret = -1;

	blob_batch_init(&b, call, BLOB_BATCH_LIST_ALL_LFS);
	if (blob_repo_open(deps, req->repository, &r, err) < 0)
		return -1;
	if (blob_scan_run(call, blob_all_objects_cmd(&r), &scan, err) == 0)
		ret = blob_batch_flush(&b, err);
	blob_batch_release(&b);
	blob_repo_close(&r);
	return ret;
}
