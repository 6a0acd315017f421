/*
 * Private glue of gitaly.BlobService (blob.c, blob_lfs.c, blob_pipe.c): the
 * request's repository opened through the handle cache, git processes read
 * line by line (rev-list, cat-file --batch-all-objects), and upstream's
 * 1 MiB item chunker for the List* and LFS responses.
 */
#ifndef SERVICE_BLOB_INTERNAL_H
#define SERVICE_BLOB_INTERNAL_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "git/repo_cache.h"
#include "rpc/call.h"
#include "service/service.h"
#include "service/util.h"
#include "shared.pb-c.h"

/* The request's repository: its path, quarantine environment and a handle. */
struct blob_repo {
	char *path;
	struct service_git_env env;
	struct repo_handle h; /* libgit2 (SHA-1) or cat-file (SHA-256) */
};

/* Resolves and opens the repository; on error nothing needs releasing. */
int blob_repo_open(const struct service_deps *deps, const Gitaly__Repository *repo,
		   struct blob_repo *out, struct error *err);
void blob_repo_close(struct blob_repo *r);

/* A git process whose stdout is read line by line. */
struct blob_pipe {
	pid_t pid;
	int out_fd, err_fd;
	char buf[65536];
	size_t start, end;
	struct strbuf line;   /* current line without '\n' */
	struct strbuf errout; /* stderr so far (capped), drained while reading */
};

int blob_pipe_start(struct git_cmd *cmd, struct blob_pipe *p, struct error *err);
/* read(2) on the process's stdout that keeps draining its stderr, so a
 * chatty git can never block us both. Returns bytes read, 0 at EOF, -1. */
ssize_t blob_pipe_read(struct blob_pipe *p, void *buf, size_t len);
/* 1 with p->line set, 0 at end of output, -1 with err set. */
int blob_pipe_next(struct blob_pipe *p, struct error *err);
/*
 * Waits for the process (killing it first when stop_early). A failure exit
 * becomes Internal "<what>: exit status N, stderr: <go-quoted stderr>".
 */
int blob_pipe_finish(struct blob_pipe *p, int stop_early, const char *what, struct error *err);

/*
 * One line of a listing (without '\n'). Returns how many items it added
 * toward the request's limit (0 for a skipped line), or -1 with err set.
 */
typedef int (*blob_line_fn)(void *ctx, const char *line, size_t len, struct error *err);

/* What a List* handler reads and how it stops. */
struct blob_scan {
	blob_line_fn line;
	void *ctx;
	int64_t limit;		 /* stop git once this many items were added; <= 0: all */
	const char *exit_what;	 /* blob_pipe_finish's name for a failing git */
	const char *exit_prefix; /* prefix of that error, or NULL */
};

/*
 * Runs cmd and hands each line of its output to s->line until the output
 * ends, the limit is reached (git is then killed, not an error), the call
 * is cancelled (Cancelled "context canceled") or a line fails. git is
 * always reaped before this returns. Returns 0 or -1 with err set.
 */
int blob_scan_run(struct rpc_call *call, struct git_cmd *cmd, const struct blob_scan *s,
		  struct error *err);

enum blob_batch_kind {
	BLOB_BATCH_LIST_BLOBS,
	BLOB_BATCH_LIST_ALL_BLOBS,
	BLOB_BATCH_GET_LFS,
	BLOB_BATCH_LIST_LFS,
	BLOB_BATCH_LIST_ALL_LFS,
};

struct blob_batch_item {
	char *oid; /* NULL on continuation chunks */
	int64_t size;
	uint8_t *data;
	size_t data_len;
	uint8_t *path;
	size_t path_len;
};

/* Items accumulate until the next one would bring the message to 1 MiB. */
struct blob_batch {
	enum blob_batch_kind kind;
	struct rpc_call *call;
	struct blob_batch_item *items;
	size_t n, alloc;
	size_t bytes;
};

void blob_batch_init(struct blob_batch *b, struct rpc_call *call, enum blob_batch_kind kind);
/* Copies oid, data and path. */
int blob_batch_add(struct blob_batch *b, const char *oid, int64_t size, const void *data,
		   size_t data_len, const void *path, size_t path_len, struct error *err);
int blob_batch_flush(struct blob_batch *b, struct error *err);
void blob_batch_release(struct blob_batch *b);

/* Blobs above this size are streamed from `git cat-file blob` rather than
 * inflated into memory by libgit2. */
#define BLOB_STREAM_THRESHOLD ((int64_t)8 << 20)

/* Receives one piece (at most 128 KiB) of a blob's content. */
typedef int (*blob_chunk_fn)(void *ctx, const uint8_t *data, size_t len, struct error *err);

/*
 * Hands the first want bytes of blob oid (of the given size) to fn in
 * pieces of SERVICE_CHUNK_SIZE (the last may be shorter). Nothing for
 * want <= 0.
 */
int blob_read_chunks(const struct blob_repo *r, const char *oid, int64_t size, int64_t want,
		     blob_chunk_fn fn, void *ctx, struct error *err);

/* The LFS handlers (blob_lfs.c). */
int blob_get_lfs_pointers_rpc(struct rpc_call *call, struct error *err);
int blob_list_lfs_pointers_rpc(struct rpc_call *call, struct error *err);
int blob_list_all_lfs_pointers_rpc(struct rpc_call *call, struct error *err);

/* Validation of List* revisions: only --all and --not may start with '-'. */
int blob_validate_revisions(char **revs, size_t n, struct error *err);

/* `git rev-list --in-commit-order --objects --object-names [filters] <revs>`
 * for blobs, with the request's object directories. */
struct git_cmd *blob_revlist_cmd(const struct blob_repo *r, char **revs, size_t n,
				 int lfs_size_filter);

/* `git cat-file --batch-all-objects --batch-check --buffer --unordered`. */
struct git_cmd *blob_all_objects_cmd(const struct blob_repo *r);

/* Parses "<oid> <type> <size>" from --batch-check. Returns 0 or -1. */
int blob_parse_batch_check(const char *line, char *oid, size_t oid_size, char *type,
			   size_t type_size, int64_t *size);

#endif
