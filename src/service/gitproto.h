/*
 * What SmartHTTPService and SSHService share: turning a request's
 * git_config_options and git_protocol into git arguments, the hooks
 * environment of receive-pack and of upload-pack's pack-objects hook, the
 * pkt-line scanner behind the negotiation timeout, and one engine that runs
 * a git transport command with its stdin fed from the client (gRPC messages
 * or a sidechannel) on a helper thread while its stdout and stderr are
 * copied to the client with 64 KiB reads. Whatever happens, the git process
 * group is killed on failure and always reaped before the engine returns.
 */
#ifndef SERVICE_GITPROTO_H
#define SERVICE_GITPROTO_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "git/command.h"
#include "net/yamux.h"
#include "rpc/call.h"
#include "service/service.h"
#include "packfile.pb-c.h"
#include "shared.pb-c.h"

/* Read size for git's output (upstream's large copy buffer). */
#define GITPROTO_COPY_BUF ((size_t)64 * 1024)
/* bulk_out: git's stdout pipe size asked for, the most sent at once (the
 * largest yamux data frame), what counts as "bytes are coming in bulk"
 * (BULK_MIN within BULK_WINDOW_US, or BULK_MIN gathered over one pause),
 * and the bounds of the pause between sends (it starts at the minimum and
 * grows with the rate seen, so a negotiation round is held up by at most
 * the minimum). */
#define GITPROTO_BULK_PIPE ((size_t)1 << 20)
#define GITPROTO_BULK_SEND ((size_t)256 * 1024)
#define GITPROTO_BULK_MIN ((size_t)16 * 1024)
#define GITPROTO_BULK_WINDOW_US 2000
#define GITPROTO_COALESCE_MIN_US 500
#define GITPROTO_COALESCE_MAX_US 20000
/* Send buffer of receive-pack's stdin socket (the kernel may cap it at
 * net.core.wmem_max). */
#define GITPROTO_PUSH_STDIN_BUF ((size_t)1 << 20)
/* Longest pkt-line, header included. */
#define GITPROTO_PKT_MAX 65520

/* The packets the monitors wait for. */
#define GITPROTO_PKT_DONE "0009done\n"
#define GITPROTO_PKT_FLUSH "0000"

/*
 * Incremental pkt-line scanner over a client's request bytes: finds one
 * exact packet (header included) and notes `deepen` lines. Lengths 0000-0003
 * are 4-byte special packets; non-hex digits and lengths above 65520 make
 * the stream invalid, as upstream's scanner.
 */
struct gitproto_pktscan {
	const char *want; /* the packet looked for, or NULL */
	size_t want_len;
	char hdr[4];
	size_t hdr_len;  /* header bytes of the current packet seen so far */
	size_t left;     /* payload bytes still to come in the current packet */
	size_t pay_len;  /* payload length of the current packet */
	uint8_t head[1024]; /* its first payload bytes */
	size_t head_len;
	uint8_t last;    /* its last payload byte */
	int found;      /* want was seen */
	int bad;        /* invalid pkt-line: scanning stopped */
	int saw_deepen; /* a packet starting with "deepen" */
	/* Upstream's packfile negotiation statistics (stats.PackfileNegotiation):
	 * packets (flushes included), payload bytes without trailing newlines,
	 * want/have/shallow lines, the first want's capabilities (space
	 * separated, malloc'd), the last deepen line and filter spec (malloc'd). */
	int64_t packets, payload_size, wants, haves, shallows;
	char *caps, *deepen, *filter;
};

void gitproto_pktscan_init(struct gitproto_pktscan *s, const char *want);
void gitproto_pktscan_release(struct gitproto_pktscan *s);

/* Feeds len bytes. Returns 1 once want has been seen, -1 once the stream is
 * invalid, 0 otherwise (the same answer again for later feeds). */
int gitproto_pktscan_feed(struct gitproto_pktscan *s, const uint8_t *data, size_t len);

/*
 * Upstream's ConvertConfigOptions: every option must be "key=value";
 * otherwise InvalidArgument `cannot convert invalid config key: "<opt>"`
 * (callers change the code where upstream returns a plain error). Keys are
 * checked against git's key rule when the command is built.
 */
int gitproto_check_config(char *const *opts, size_t n, struct error *err);

/* The GIT_PROTOCOL value for a request's git_protocol: "version=2" or
 * "version=1" pass, anything else is ignored (NULL). */
const char *gitproto_protocol(const char *git_protocol);

/* Adds the request's options (already checked) as -c and GIT_PROTOCOL. */
void gitproto_apply(struct git_cmd *cmd, const char *git_protocol, char *const *opts, size_t n);

/* Who runs a receive-pack or upload-pack, for the hooks payload. */
struct gitproto_user {
	const char *gl_id;
	const char *gl_username;
	const char *protocol;   /* "http" or "ssh" */
	const char *remote_ip;
};

/*
 * Receive-pack's hooks: -c core.hooksPath=<deps->hooks_dir> and
 * GITALY_HOOKS_PAYLOAD requesting pre-receive, update, post-receive and
 * reference-transaction. gl_repository is used when the repository
 * message has none. Internal when the server has no hooks directory.
 */
int gitproto_receive_hooks(const struct service_deps *deps, const Gitaly__Repository *repo,
			   const char *repo_path, const char *gl_repository,
			   const struct gitproto_user *user, struct git_cmd *cmd, struct error *err);

/*
 * Upload-pack's pack-objects hook when [pack_objects_cache] is enabled
 * (upstream's WithPackObjectsHookEnv): -c uploadpack.packObjectsHook=
 * <gitaly-hooks> and the payload with the user details from the call's
 * metadata. Does nothing when the cache is disabled.
 */
int gitproto_pack_objects_hook(const struct service_deps *deps, struct rpc_call *call,
			       const Gitaly__Repository *repo, const char *repo_path,
			       const char *protocol, struct git_cmd *cmd, struct error *err);

/* Where the command's stdin comes from. */
enum gitproto_input {
	GITPROTO_IN_NONE,        /* /dev/null */
	GITPROTO_IN_GRPC,        /* the stdin field of the call's next messages */
	GITPROTO_IN_SIDECHANNEL, /* the unframed request on a sidechannel stream */
};

/* The bytes field carrying stdin in a request message (NULL: none). */
typedef const ProtobufCBinaryData *(*gitproto_stdin_fn)(const ProtobufCMessage *m);
/* Sends output; band 1 is stdout, 2 stderr. */
typedef int (*gitproto_out_fn)(void *ctx, int band, const uint8_t *buf, size_t len,
			       struct error *err);

struct gitproto_run {
	struct rpc_call *call;
	enum gitproto_input input;
	gitproto_stdin_fn stdin_of;  /* GITPROTO_IN_GRPC */
	/* GITPROTO_IN_SIDECHANNEL: the engine takes the stream over; it
	 * half-closes it once git is done and frees it when its reader is done
	 * too (the reader may outlive the RPC until the client closes). */
	struct yamux_stream *stream;
	gitproto_out_fn out;
	void *out_ctx;
	int send_stderr;             /* also hand stderr to out (band 2) */
	/* Optional, for stdout (band 1) only: moves len bytes that wait in the
	 * pipe fd to the client without copying them through user space
	 * (yamux_stream_write_pipe). out still receives stderr. */
	int (*out_pipe)(void *ctx, int fd, size_t len, struct error *err);
	/* Non-zero: stdout is a bulk stream (a pack on a sidechannel). Git's
	 * stdout pipe is enlarged and, while git writes faster than a trickle,
	 * the engine lets bytes collect for a few milliseconds between sends
	 * instead of waking up for every write git makes (upload-pack writes
	 * each side-band header and payload separately): fewer, larger frames
	 * and far fewer wake-ups, at a latency cost of at most
	 * GITPROTO_COALESCE_MAX_US per send. */
	int bulk_out;
	/* Non-zero: git's stdin is a Unix socket with this send buffer
	 * instead of a pipe. A writer blocked on a full pipe is woken for
	 * every page git reads (index-pack reads 4 KiB at a time); one blocked
	 * on a socket only once three quarters of its buffer have drained. */
	size_t stdin_socket_buf;
	/* Negotiation monitor: the packet, and how long to wait for it. */
	const char *monitor_pkt;     /* NULL: none */
	int64_t monitor_timeout_ms;

	/* Results. */
	int started;                 /* git was spawned */
	struct git_result res;
	struct strbuf stderr_text;   /* what git wrote to stderr (capped) */
	int negotiation_timeout;     /* killed: monitor packet not seen in time */
	int saw_deepen;
	int64_t response_bytes;      /* stdout bytes sent */
	struct gitproto_pktscan stats; /* the request's negotiation statistics */
};

/* A receive-pack request as SmartHTTPService and SSHService both carry it. */
struct gitproto_receive_pack {
	const Gitaly__Repository *repository;
	const char *gl_id;
	const char *gl_username;
	const char *gl_repository;
	const char *git_protocol;
	char *const *config; /* git_config_options */
	size_t n_config;
	const char *protocol;  /* "http" or "ssh", for the hooks payload */
	int stateless;         /* HTTP: --stateless-rpc */
	enum status_code config_code; /* code of an invalid config option */
	/* A failure to start git: its message prefix and code. */
	const char *spawn_prefix;
	enum status_code spawn_code;
};

/*
 * Upstream's PostReceivePack / SSHReceivePack after the service's own
 * request checks: resolves the repository, checks the config options
 * (refused with rq->config_code), builds `git receive-pack` with the hooks
 * payload, the options and GIT_PROTOCOL, and runs it with the input and
 * output already set in run (call, input, stdin_of, out...). Returns 0 when
 * git ran and was reaped (check run->res), -1 with err set otherwise (a
 * failure to start git carries rq->spawn_prefix and rq->spawn_code).
 */
int gitproto_receive_pack(const struct service_deps *deps, struct rpc_call *call,
			  const struct gitproto_receive_pack *rq, struct gitproto_run *run,
			  struct error *err);

/* Fills st (strings borrowed from r, caps in the arena of call) from the
 * statistics of the request r ran. */
void gitproto_stats_proto(struct rpc_call *call, const struct gitproto_run *r,
			  Gitaly__PackfileNegotiationStatistics *st);

/* Zeroes r and prepares its buffers. */
void gitproto_run_init(struct gitproto_run *r);
void gitproto_run_release(struct gitproto_run *r);

/*
 * Starts cmd (freed) and runs it to its end. Returns 0 when git ran and was
 * reaped (check r->res, r->negotiation_timeout), -1 with err set when it
 * could not be started or the client went away or an output write failed
 * (git is then killed and reaped as well).
 */
int gitproto_run_cmd(struct gitproto_run *r, struct git_cmd *cmd, struct error *err);

#endif
