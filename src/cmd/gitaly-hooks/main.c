/*
 * gitaly-hooks: the program git runs as its pre-receive, post-receive,
 * update and reference-transaction hooks (it is symlinked under those
 * names). It reads the hooks payload from GITALY_HOOKS_PAYLOAD, calls the
 * matching HookService RPC on gitaly's internal socket with the v2 token,
 * streams its stdin to the server, copies the server's stdout and stderr
 * back, and exits with the exit status the server reports. Any other
 * failure prints "error executing git hook" and exits 1. Run by upload-pack
 * as `gitaly-hooks git pack-objects ...` it is the pack-objects hook
 * (packobjects.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <jansson.h>

#include "base/strbuf.h"
#include "hook.pb-c.h"
#include "hook/payload.h"
#include "rpc/auth.h"
#include "client.h"

extern char **environ;

#define CHUNK ((size_t)128 * 1024)
#define MAX_STDIN ((size_t)64 << 20)

int wait_tag(struct client *c, void *tag)
{
	grpc_event ev = grpc_completion_queue_pluck(c->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME),
						    NULL);
	return ev.type == GRPC_OP_COMPLETE && ev.success ? 0 : -1;
}

void add_md(struct client *c, const char *key, const char *value)
{
	if (!value || !*value || c->n_md >= sizeof(c->md) / sizeof(c->md[0]))
		return;
	c->md[c->n_md].key = grpc_slice_from_copied_string(key);
	c->md[c->n_md].value = grpc_slice_from_copied_string(value);
	c->n_md++;
}

/* Forwards the payload's feature flags as gitaly-feature-<name> metadata. */
static void add_feature_flags(struct client *c, const char *json)
{
	json_t *arr = json ? json_loads(json, 0, NULL) : NULL;
	size_t i;
	json_t *ff;

	json_array_foreach(arr, i, ff)
	{
		const char *name = json_string_value(json_object_get(json_object_get(ff, "flag"), "name"));
		char key[256];
		if (!name || strlen(name) > 200)
			continue;
		snprintf(key, sizeof(key), "gitaly-feature-%s", name);
		for (char *k = key; *k; k++)
			if (*k == '_')
				*k = '-';
		add_md(c, key, json_is_true(json_object_get(ff, "enabled")) ? "true" : "false");
	}
	json_decref(arr);
}

/*
 * Connects to gitaly's internal socket ourselves and hands the descriptor
 * to grpc core: that skips the resolver, the load-balancing policy and the
 * subchannel grpc_channel_create sets up for one call, a good part of a
 * hook's start-up CPU. The HTTP/2 connection is the same (authority
 * "localhost", as grpc gives unix targets). NULL when the socket cannot be
 * dialed this way; the caller then lets grpc dial (and report) it.
 */
static grpc_channel *channel_from_fd(const char *target, const char *path,
				     grpc_channel_credentials *cc)
{
	struct sockaddr_un sa;
	grpc_arg arg;
	grpc_channel_args args = {1, &arg};
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path))
		return NULL;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	/* grpc core needs a non-blocking descriptor (DESIGN.md) */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		close(fd);
		return NULL;
	}
	arg.type = GRPC_ARG_STRING;
	arg.key = (char *)GRPC_ARG_DEFAULT_AUTHORITY;
	arg.value.string = (char *)"localhost";
	return grpc_channel_create_from_fd(target, fd, cc, &args); /* owns fd */
}

/* Starts the call and sends the initial metadata. */
int start_call(struct client *c, const struct hook_payload *p, const char *method)
{
	char target[4200], token[256];
	int tag = 1;

	snprintf(target, sizeof(target), "unix:%s", p->internal_socket ? p->internal_socket : "");
	grpc_channel_credentials *cc = grpc_insecure_credentials_create();
	c->ch = channel_from_fd(target, p->internal_socket, cc);
	if (!c->ch)
		c->ch = grpc_channel_create(target, cc, NULL);
	grpc_channel_credentials_release(cc);
	c->cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_slice ms = grpc_slice_from_copied_string(method);
	c->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, ms, NULL,
					   gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_slice_unref(ms);
	if (p->internal_socket_token && *p->internal_socket_token &&
	    auth_token_v2(p->internal_socket_token, (int64_t)time(NULL), token + 7,
			  sizeof(token) - 7) == 0) {
		memcpy(token, "Bearer ", 7);
		add_md(c, "authorization", token);
	}
	add_md(c, "user_id", p->userid);
	add_md(c, "username", p->username);
	add_md(c, "remote_ip", p->remote_ip);
	add_md(c, "x-gitlab-client-name", "gitaly-hooks");
	add_md(c, "x-gitlab-correlation-id", getenv("CORRELATION_ID"));
	add_feature_flags(c, p->feature_flags_json);

	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_INITIAL_METADATA;
	op.data.send_initial_metadata.count = c->n_md;
	op.data.send_initial_metadata.metadata = c->md;
	if (grpc_call_start_batch(c->call, &op, 1, &tag, NULL) != GRPC_CALL_OK)
		return -1;
	return wait_tag(c, &tag);
}

int send_msg(struct client *c, const ProtobufCMessage *m, int close)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	grpc_op ops[2];
	int tag = 2, n = 1, ret;

	if (!buf)
		return -1;
	protobuf_c_message_pack(m, buf);
	grpc_slice s = grpc_slice_from_copied_buffer((const char *)buf, len);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	free(buf);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_MESSAGE;
	ops[0].data.send_message.send_message = bb;
	if (close) {
		ops[1].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
		n = 2;
	}
	ret = grpc_call_start_batch(c->call, ops, (size_t)n, &tag, NULL) == GRPC_CALL_OK
		      ? wait_tag(c, &tag)
		      : -1;
	grpc_byte_buffer_destroy(bb);
	return ret;
}

static int send_close(struct client *c)
{
	grpc_op op;
	int tag = 3;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	if (grpc_call_start_batch(c->call, &op, 1, &tag, NULL) != GRPC_CALL_OK)
		return -1;
	return wait_tag(c, &tag);
}

static void write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		len -= (size_t)w;
	}
}

/* The bytes field `name` of a message (responses share field names). */
static const ProtobufCBinaryData *bytes_field(const ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
	return f ? (const ProtobufCBinaryData *)((const char *)m + f->offset) : NULL;
}

/*
 * Reads responses until the end of the stream, copying stdout and stderr;
 * *exit_code from the last exit_status. Returns 0 when the call ended OK.
 */
static int recv_all(struct client *c, const ProtobufCMessageDescriptor *desc, int *exit_code)
{
	grpc_metadata_array init_md;
	int have_status = 0, first = 1;

	grpc_metadata_array_init(&init_md);
	for (;;) {
		grpc_byte_buffer *bb = NULL;
		grpc_op ops[2];
		size_t n = 0;
		int tag = 4;
		memset(ops, 0, sizeof(ops));
		/* grpc core delivers no message before the initial metadata. */
		if (first) {
			ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
			ops[n++].data.recv_initial_metadata.recv_initial_metadata = &init_md;
			first = 0;
		}
		ops[n].op = GRPC_OP_RECV_MESSAGE;
		ops[n++].data.recv_message.recv_message = &bb;
		if (grpc_call_start_batch(c->call, ops, n, &tag, NULL) != GRPC_CALL_OK ||
		    wait_tag(c, &tag) < 0) {
			grpc_metadata_array_destroy(&init_md);
			return -1;
		}
		if (!bb)
			break;
		grpc_byte_buffer_reader rd;
		grpc_byte_buffer_reader_init(&rd, bb);
		grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
		ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(s),
								 GRPC_SLICE_START_PTR(s));
		grpc_slice_unref(s);
		grpc_byte_buffer_reader_destroy(&rd);
		grpc_byte_buffer_destroy(bb);
		if (!m) {
			grpc_metadata_array_destroy(&init_md);
			return -1;
		}
		const ProtobufCBinaryData *out = bytes_field(m, "stdout");
		const ProtobufCBinaryData *err = bytes_field(m, "stderr");
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field_by_name(desc, "exit_status");
		Gitaly__ExitStatus *st = f ? *(Gitaly__ExitStatus **)((char *)m + f->offset) : NULL;
		if (out && out->len)
			write_all(1, out->data, out->len);
		if (err && err->len)
			write_all(2, err->data, err->len);
		if (st) {
			*exit_code = st->value;
			have_status = 1;
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
	grpc_metadata_array trail;
	grpc_status_code code;
	grpc_slice details;
	grpc_op op;
	int tag = 5;
	grpc_metadata_array_init(&trail);
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op.data.recv_status_on_client.trailing_metadata = &trail;
	op.data.recv_status_on_client.status = &code;
	op.data.recv_status_on_client.status_details = &details;
	int ok = grpc_call_start_batch(c->call, &op, 1, &tag, NULL) == GRPC_CALL_OK &&
		 wait_tag(c, &tag) == 0;
	if (ok && code != GRPC_STATUS_OK) {
		char *d = grpc_slice_to_c_string(details);
		fprintf(stderr, "%s\n", d);
		gpr_free(d);
	}
	if (ok)
		grpc_slice_unref(details);
	grpc_metadata_array_destroy(&trail);
	grpc_metadata_array_destroy(&init_md);
	return ok && code == GRPC_STATUS_OK && have_status ? 0 : -1;
}

void client_close(struct client *c)
{
	if (c->call)
		grpc_call_unref(c->call);
	for (size_t i = 0; i < c->n_md; i++) {
		grpc_slice_unref(c->md[i].key);
		grpc_slice_unref(c->md[i].value);
	}
	if (c->ch)
		grpc_channel_destroy(c->ch);
	if (c->cq) {
		grpc_completion_queue_shutdown(c->cq);
		while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_past(GPR_CLOCK_REALTIME), NULL)
			       .type != GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(c->cq);
	}
}

static int read_stdin(struct strbuf *in)
{
	char buf[65536];
	strbuf_init(in, MAX_STDIN);
	for (;;) {
		ssize_t n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (strbuf_add(in, buf, (size_t)n) < 0)
			return -1;
	}
}

static size_t count_env(void)
{
	size_t n = 0;
	while (environ[n])
		n++;
	return n;
}

/* Push options as git hands them to hooks. */
static char **push_options(size_t *n)
{
	const char *cnt = getenv("GIT_PUSH_OPTION_COUNT");
	long k = cnt ? strtol(cnt, NULL, 10) : 0;
	char **opts;

	*n = 0;
	if (k <= 0 || k > 1000)
		return NULL;
	opts = calloc((size_t)k, sizeof(char *));
	for (long i = 0; opts && i < k; i++) {
		char key[48];
		snprintf(key, sizeof(key), "GIT_PUSH_OPTION_%ld", i);
		const char *v = getenv(key);
		opts[(*n)++] = (char *)(v ? v : "");
	}
	return opts;
}

static int run(const char *name, int argc, char **argv, const struct hook_payload *p,
	       int *exit_code)
{
	struct client c;
	struct strbuf in = STRBUF_INIT;
	Gitaly__Repository repo = GITALY__REPOSITORY__INIT;
	size_t n_opts = 0;
	char **opts = NULL;
	int ret = -1;

	memset(&c, 0, sizeof(c));
	repo.storage_name = p->repo.storage_name ? p->repo.storage_name : "";
	repo.relative_path = p->repo.relative_path ? p->repo.relative_path : "";
	repo.git_object_directory = p->repo.git_object_directory ? p->repo.git_object_directory : "";
	repo.git_alternate_object_directories = p->repo.git_alternate_object_directories;
	repo.n_git_alternate_object_directories = p->repo.n_git_alternate_object_directories;
	repo.gl_repository = p->repo.gl_repository ? p->repo.gl_repository : "";
	repo.gl_project_path = p->repo.gl_project_path ? p->repo.gl_project_path : "";

	if (!strcmp(name, "update")) {
		Gitaly__UpdateHookRequest r = GITALY__UPDATE_HOOK_REQUEST__INIT;
		if (argc < 4) {
			fprintf(stderr, "update hook needs ref, old and new values\n");
			goto out;
		}
		r.repository = &repo;
		r.environment_variables = environ;
		r.n_environment_variables = count_env();
		r.ref.data = (uint8_t *)argv[1];
		r.ref.len = strlen(argv[1]);
		r.old_value = argv[2];
		r.new_value = argv[3];
		if (start_call(&c, p, "/gitaly.HookService/UpdateHook") < 0 ||
		    send_msg(&c, &r.base, 1) < 0)
			goto out;
		ret = recv_all(&c, &gitaly__update_hook_response__descriptor, exit_code);
		goto out;
	}
	if (read_stdin(&in) < 0)
		goto out;
	if (!strcmp(name, "pre-receive") || !strcmp(name, "post-receive")) {
		int pre = !strcmp(name, "pre-receive");
		opts = push_options(&n_opts);
		Gitaly__PreReceiveHookRequest a = GITALY__PRE_RECEIVE_HOOK_REQUEST__INIT;
		Gitaly__PostReceiveHookRequest b = GITALY__POST_RECEIVE_HOOK_REQUEST__INIT;
		a.repository = b.repository = &repo;
		a.environment_variables = b.environment_variables = environ;
		a.n_environment_variables = b.n_environment_variables = count_env();
		a.git_push_options = b.git_push_options = opts;
		a.n_git_push_options = b.n_git_push_options = n_opts;
		if (start_call(&c, p, pre ? "/gitaly.HookService/PreReceiveHook"
					  : "/gitaly.HookService/PostReceiveHook") < 0)
			goto out;
		size_t off = 0, first = in.len < CHUNK ? in.len : CHUNK;
		a.stdin.data = b.stdin.data = (uint8_t *)in.buf;
		a.stdin.len = b.stdin.len = first;
		if (send_msg(&c, pre ? &a.base : &b.base, 0) < 0)
			goto out;
		for (off = first; off < in.len; off += CHUNK) {
			Gitaly__PreReceiveHookRequest ca = GITALY__PRE_RECEIVE_HOOK_REQUEST__INIT;
			Gitaly__PostReceiveHookRequest cb = GITALY__POST_RECEIVE_HOOK_REQUEST__INIT;
			size_t n = in.len - off < CHUNK ? in.len - off : CHUNK;
			ca.stdin.data = cb.stdin.data = (uint8_t *)in.buf + off;
			ca.stdin.len = cb.stdin.len = n;
			if (send_msg(&c, pre ? &ca.base : &cb.base, 0) < 0)
				goto out;
		}
		if (send_close(&c) < 0)
			goto out;
		ret = recv_all(&c, pre ? &gitaly__pre_receive_hook_response__descriptor
				       : &gitaly__post_receive_hook_response__descriptor,
			       exit_code);
		goto out;
	}
	if (!strcmp(name, "reference-transaction")) {
		Gitaly__ReferenceTransactionHookRequest r =
			GITALY__REFERENCE_TRANSACTION_HOOK_REQUEST__INIT;
		const char *state = argc > 1 ? argv[1] : "";
		if (!strcmp(state, "prepared"))
			r.state = GITALY__REFERENCE_TRANSACTION_HOOK_REQUEST__STATE__PREPARED;
		else if (!strcmp(state, "committed"))
			r.state = GITALY__REFERENCE_TRANSACTION_HOOK_REQUEST__STATE__COMMITTED;
		else if (!strcmp(state, "aborted"))
			r.state = GITALY__REFERENCE_TRANSACTION_HOOK_REQUEST__STATE__ABORTED;
		else {
			fprintf(stderr, "unknown reference-transaction state %s\n", state);
			goto out;
		}
		r.repository = &repo;
		r.environment_variables = environ;
		r.n_environment_variables = count_env();
		r.stdin.data = (uint8_t *)in.buf;
		r.stdin.len = in.len;
		if (start_call(&c, p, "/gitaly.HookService/ReferenceTransactionHook") < 0 ||
		    send_msg(&c, &r.base, 1) < 0)
			goto out;
		ret = recv_all(&c, &gitaly__reference_transaction_hook_response__descriptor,
			       exit_code);
		goto out;
	}
	fprintf(stderr, "subcommand name invalid: %s\n", name);
out:
	free(opts);
	strbuf_release(&in);
	client_close(&c);
	return ret;
}

static unsigned hook_bit(const char *name)
{
	if (!strcmp(name, "pre-receive"))
		return HOOK_PRE_RECEIVE;
	if (!strcmp(name, "post-receive"))
		return HOOK_POST_RECEIVE;
	if (!strcmp(name, "update"))
		return HOOK_UPDATE;
	if (!strcmp(name, "reference-transaction"))
		return HOOK_REFERENCE_TRANSACTION;
	return 0;
}

/*
 * Without a Praefect transaction the server's ReferenceTransactionHook has
 * nothing to do (it only votes; custom hooks never run for this hook), so
 * the call is skipped: git runs this hook twice per ref update, and the
 * process is the cost. The state is still checked and stdin drained.
 */
static int skip_reference_transaction(int argc, char **argv, struct hook_payload *p)
{
	const char *state = argc > 1 ? argv[1] : "";
	char buf[8192];
	int rc = 0;

	if (strcmp(state, "prepared") && strcmp(state, "committed") && strcmp(state, "aborted")) {
		fprintf(stderr, "unknown reference-transaction state %s\n", state);
		rc = 1;
	}
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
		;
	hook_payload_release(p);
	return rc;
}

int main(int argc, char **argv)
{
	struct hook_payload p;
	struct error err = ERROR_INIT;
	char argv0[4096];
	int exit_code = 1;

	snprintf(argv0, sizeof(argv0), "%s", argc > 0 ? argv[0] : "");
	const char *name = basename(argv0);
	int pack_objects = argc > 1 && !strcmp(argv[1], "git");
	unsigned bit = pack_objects ? HOOK_PACK_OBJECTS : hook_bit(name);
	const char *value = getenv(HOOK_PAYLOAD_ENV);

	if (!bit) {
		fprintf(stderr, "subcommand name invalid: %s\n", name);
		return 1;
	}
	if (!value) {
		fprintf(stderr, "error executing git hook: no hooks payload found in environment\n");
		return 1;
	}
	if (hook_payload_decode(value, &p, &err) < 0) {
		fprintf(stderr, "error executing git hook: %s\n", err.message);
		error_release(&err);
		return 1;
	}
	if (!hook_payload_is_requested(&p, bit)) {
		hook_payload_release(&p);
		return 0;
	}
	if (bit == HOOK_REFERENCE_TRANSACTION && !p.has_transaction)
		return skip_reference_transaction(argc, argv, &p);
	/* One malloc arena: grpc's few threads would each map a 64 MiB heap
	 * for a process that lives for one call. */
	mallopt(M_ARENA_MAX, 1);
	grpc_init();
	if (pack_objects) {
		/* Once per clone or fetch: exit without grpc's teardown (joining
		 * its threads, destroying the channel), which only costs CPU. */
		exit_code = pack_objects_hook(argc - 2, argv + 2, &p);
		fflush(NULL);
		_exit(exit_code);
	} else if (run(name, argc, argv, &p, &exit_code) < 0) {
		fprintf(stderr, "error executing git hook\n");
		exit_code = 1;
	}
	grpc_shutdown();
	hook_payload_release(&p);
	return exit_code;
}
