/*
 * SSH forced-command mode, the part gitlab-shell plays: sshd runs
 * `gitaly-gateway ssh-command <user>` for a key (authorized_keys
 * command="..."), we read SSH_ORIGINAL_COMMAND and GIT_PROTOCOL and relay
 * stdin/stdout/stderr to Gitaly: upload-pack over a sidechannel with
 * side-band demultiplexing (finished when the response ends, without waiting
 * for stdin), receive-pack and upload-archive as bidi streams. The process
 * exits with git's remote exit status.
 */
#include "gateway/gateway.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/strbuf.h"
#include "net/sidechannel.h"
#include "repository.pb-c.h"
#include "ssh.pb-c.h"

#define STDIN_CHUNK (64u * 1024u) /* the data path's copy buffer size */
#define MAX_COMMAND 4096

/* ---- command parsing ---------------------------------------------------- */

/* Shell-like word splitting: quotes and backslashes, like gitlab-shell's. */
static int split_words(const char *s, struct strbuf *words, size_t max, size_t *n,
		       struct error *err)
{
	size_t count = 0;

	while (*s) {
		int in_word = 0;
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		if (count == max)
			return error_set(err, STATUS_INVALID_ARGUMENT, "too many arguments");
		strbuf_init(&words[count], MAX_COMMAND);
		while (*s && *s != ' ' && *s != '\t') {
			in_word = 1;
			if (*s == '\'') {
				const char *end = strchr(s + 1, '\'');
				if (!end)
					return error_set(err, STATUS_INVALID_ARGUMENT,
							 "unterminated quote");
				strbuf_add(&words[count], s + 1, (size_t)(end - s - 1));
				s = end + 1;
			} else if (*s == '"') {
				s++;
				while (*s && *s != '"') {
					if (*s == '\\' && (s[1] == '"' || s[1] == '\\' || s[1] == '$' ||
							   s[1] == '`'))
						s++;
					strbuf_addch(&words[count], *s++);
				}
				if (*s != '"')
					return error_set(err, STATUS_INVALID_ARGUMENT,
							 "unterminated quote");
				s++;
			} else if (*s == '\\' && s[1]) {
				strbuf_addch(&words[count], s[1]);
				s += 2;
			} else {
				strbuf_addch(&words[count], *s++);
			}
		}
		if (in_word)
			count++;
	}
	*n = count;
	return 0;
}

int gateway_ssh_parse_command(const char *cmd, const char **service, char **path,
			      struct error *err)
{
	static const char *const services[] = { "git-upload-pack", "git-receive-pack",
						"git-upload-archive" };
	struct strbuf w[4] = { STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, STRBUF_INIT };
	size_t n = 0, first = 0;
	struct strbuf name = STRBUF_INIT;
	int ret = -1;

	*path = NULL;
	if (!cmd || !*cmd) {
		error_set(err, STATUS_INVALID_ARGUMENT, "no SSH_ORIGINAL_COMMAND: interactive shells are not supported");
		goto out;
	}
	if (strlen(cmd) > MAX_COMMAND) {
		error_set(err, STATUS_INVALID_ARGUMENT, "command too long");
		goto out;
	}
	if (split_words(cmd, w, 4, &n, err) < 0)
		goto out;
	strbuf_init(&name, 64);
	for (size_t i = 0; i < n; i++)
		if (!w[i].buf && strbuf_add(&w[i], "", 0) < 0) { /* '' words */
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
	if (n == 3 && !strcmp(w[0].buf, "git")) {
		strbuf_addf(&name, "git-%s", w[1].buf);
		first = 1;
	} else if (n == 2) {
		strbuf_adds(&name, w[0].buf);
	} else {
		error_set(err, STATUS_INVALID_ARGUMENT, "Disallowed command");
		goto out;
	}
	*service = NULL;
	for (size_t i = 0; i < 3; i++)
		if (!strcmp(name.buf, services[i]))
			*service = services[i];
	if (!*service || !name.buf) {
		error_set(err, STATUS_INVALID_ARGUMENT, "Disallowed command");
		goto out;
	}
	*path = strdup(w[first + 1].buf);
	if (!*path) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	ret = 0;
out:
	for (size_t i = 0; i < 4; i++)
		strbuf_release(&w[i]);
	strbuf_release(&name);
	return ret;
}

/* ---- relaying ------------------------------------------------------------- */

static int write_fd(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void say(const char *fmt, const char *msg)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), fmt, msg);
	if (n > 0)
		write_fd(2, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* stdin -> sidechannel frames, "0000" at EOF. */
static void *upload_stdin(void *arg)
{
	struct yamux_stream *st = arg;
	struct sidechannel_io io;
	struct error err = ERROR_INIT;
	char buf[STDIN_CHUNK];

	sidechannel_io_from_stream(&io, st);
	for (;;) {
		ssize_t n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (sidechannel_write_frames(&io, buf, (size_t)n, &err) < 0)
			goto out;
	}
	sidechannel_write_flush(&io, &err);
out:
	error_release(&err);
	return NULL;
}

static int upload_pack(struct gateway_config *cfg, struct gateway_conn *conn,
		       const struct gateway_repo *r, const char *proto,
		       const struct gitaly_call_opts *o, struct error *err)
{
	Gitaly__SSHUploadPackWithSidechannelRequest req =
		GITALY__SSHUPLOAD_PACK_WITH_SIDECHANNEL_REQUEST__INIT;
	Gitaly__Repository repo;
	struct gitaly_sc_call *sc = NULL;
	struct yamux_stream *st;
	struct sidechannel_io io;
	uint8_t *buf = NULL;
	pthread_t t;
	int ret = -1;

	gateway_repo_message(r, &repo);
	req.repository = &repo;
	req.git_protocol = (char *)proto;
	req.git_config_options = cfg->git_config;
	req.n_git_config_options = cfg->n_git_config;
	if (gitaly_sc_call_start(conn->conn, "/gitaly.SSHService/SSHUploadPackWithSidechannel",
				 &req.base,
				 &gitaly__sshupload_pack_with_sidechannel_response__descriptor, o,
				 &sc, err) < 0 ||
	    gitaly_sc_call_stream(sc, &st, err) < 0)
		goto out;
	buf = malloc(SIDECHANNEL_SIDEBAND_MAX_DATA);
	if (!buf) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (pthread_create(&t, NULL, upload_stdin, st) != 0) {
		error_set(err, STATUS_INTERNAL, "cannot start stdin thread");
		goto out;
	}
	pthread_detach(t); /* may stay blocked on stdin; the process exits */
	sidechannel_io_from_stream(&io, st);
	for (;;) {
		int band;
		size_t len;
		if (sidechannel_sideband_read(&io, &band, buf, &len, err) < 0) {
			/* a failed call drops its sidechannel: its status says why */
			struct error cerr = ERROR_INIT;
			if (gitaly_sc_call_finish(sc, NULL, &cerr) < 0)
				error_move(err, &cerr);
			error_release(&cerr);
			goto out;
		}
		if (!len)
			break;
		if (write_fd(band == 1 ? 1 : 2, buf, len) < 0) {
			error_set(err, STATUS_CANCELLED, "client went away");
			goto out;
		}
	}
	ret = gitaly_sc_call_finish(sc, NULL, err);
out:
	/* the stdin thread may still use the stream: sc lives until exit */
	free(buf);
	return ret;
}

/* A bidi call (receive-pack, upload-archive) and how to build its messages. */
struct bidi {
	struct gitaly_call *call;
	int archive;
};

/* stdin -> request messages, then half-close. */
static void *bidi_stdin(void *arg)
{
	struct bidi *b = arg;
	struct error err = ERROR_INIT;
	uint8_t buf[STDIN_CHUNK];

	for (;;) {
		ssize_t n = read(0, buf, sizeof(buf));
		int r;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (b->archive) {
			Gitaly__SSHUploadArchiveRequest m = GITALY__SSHUPLOAD_ARCHIVE_REQUEST__INIT;
			m.stdin.data = buf;
			m.stdin.len = (size_t)n;
			r = gitaly_call_send(b->call, &m.base, 0, &err);
		} else {
			Gitaly__SSHReceivePackRequest m = GITALY__SSHRECEIVE_PACK_REQUEST__INIT;
			m.stdin.data = buf;
			m.stdin.len = (size_t)n;
			r = gitaly_call_send(b->call, &m.base, 0, &err);
		}
		if (r < 0)
			goto out;
	}
	gitaly_call_close_send(b->call, &err);
out:
	error_release(&err);
	return NULL;
}

/* Relays a bidi call; *exit_code gets the remote exit status. */
static int bidi_relay(struct gateway_conn *conn, const char *method, const ProtobufCMessage *first,
		      int archive, const struct gitaly_call_opts *o, int *exit_code,
		      struct error *err)
{
	struct bidi b = { NULL, archive };
	const ProtobufCMessageDescriptor *d = archive
						      ? &gitaly__sshupload_archive_response__descriptor
						      : &gitaly__sshreceive_pack_response__descriptor;
	pthread_t t;
	int ret = -1, code = 0;

	if (gitaly_call_start(conn->conn, method, o, &b.call, err) < 0)
		return -1;
	if (gitaly_call_send(b.call, first, 0, err) < 0) {
		error_release(err);
		gitaly_call_finish(b.call, err);
		if (!error_is_set(err))
			error_set(err, STATUS_UNAVAILABLE, "call ended");
		return -1;
	}
	if (pthread_create(&t, NULL, bidi_stdin, &b) != 0)
		return error_set(err, STATUS_INTERNAL, "cannot start stdin thread");
	pthread_detach(t); /* may stay blocked on stdin; the process exits */
	for (;;) {
		ProtobufCMessage *m = NULL;
		ProtobufCBinaryData out, errb;
		Gitaly__ExitStatus *es;
		if (gitaly_call_recv(b.call, d, &m, err) < 0)
			goto out;
		if (!m)
			break;
		if (archive) {
			Gitaly__SSHUploadArchiveResponse *a = (void *)m;
			out = a->stdout;
			errb = a->stderr;
			es = a->exit_status;
		} else {
			Gitaly__SSHReceivePackResponse *a = (void *)m;
			out = a->stdout;
			errb = a->stderr;
			es = a->exit_status;
		}
		if (es)
			code = es->value;
		if ((out.len && write_fd(1, out.data, out.len) < 0) ||
		    (errb.len && write_fd(2, errb.data, errb.len) < 0)) {
			protobuf_c_message_free_unpacked(m, NULL);
			error_set(err, STATUS_CANCELLED, "client went away");
			goto out;
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
	if (gitaly_call_finish(b.call, err) < 0) {
		if (code) { /* git failed: its status is the answer */
			error_release(err);
			*exit_code = code;
			ret = 0;
		}
		goto out;
	}
	*exit_code = code;
	ret = 0;
out:
	/* the stdin thread may still use the call: it lives until exit */
	return ret;
}

int gateway_ssh_command(struct gateway_config *cfg, const char *user)
{
	struct error err = ERROR_INIT;
	struct gateway_repo r = { 0 };
	struct gateway_conn *conn = NULL;
	struct gitaly_call_opts o = { 0 };
	const char *service = NULL, *cmd = getenv("SSH_ORIGINAL_COMMAND");
	const char *gp = getenv("GIT_PROTOCOL");
	const char *ssh_conn = getenv("SSH_CONNECTION");
	char remote_ip[64];
	const char *proto = "";
	char *path = NULL;
	struct strbuf gl_id = STRBUF_INIT;
	Gitaly__Repository repo;
	int code = 1;

	gitaly_client_init();
	o.timeout_ms = cfg->call_timeout_ms;
	/* like gitlab-shell: the SSH client's IP from sshd's SSH_CONNECTION */
	if (ssh_conn && sscanf(ssh_conn, "%63s", remote_ip) == 1)
		o.remote_ip = remote_ip;
	if (gp && (!strcmp(gp, "version=2") || !strcmp(gp, "version=1")))
		proto = gp;
	if (!user || !*user) {
		error_set(&err, STATUS_INVALID_ARGUMENT, "no user given");
		goto out;
	}
	if (gateway_ssh_parse_command(cmd, &service, &path, &err) < 0 ||
	    gateway_repo_resolve(cfg, path, strlen(path), &r, &err) < 0 ||
	    gateway_conn_get(r.storage, &conn, &err) < 0)
		goto out;
	strbuf_init(&gl_id, 1024);
	strbuf_addf(&gl_id, "username-%s", user);
	gateway_repo_message(&r, &repo);
	if (!strcmp(service, "git-upload-pack")) {
		if (upload_pack(cfg, conn, &r, proto, &o, &err) == 0)
			code = 0;
	} else if (!strcmp(service, "git-receive-pack")) {
		Gitaly__SSHReceivePackRequest m = GITALY__SSHRECEIVE_PACK_REQUEST__INIT;
		m.repository = &repo;
		m.gl_id = gl_id.buf;
		m.gl_username = (char *)user;
		m.gl_repository = r.relative_path;
		m.git_protocol = (char *)proto;
		m.git_config_options = cfg->git_config;
		m.n_git_config_options = cfg->n_git_config;
		if (bidi_relay(conn, "/gitaly.SSHService/SSHReceivePack", &m.base, 0, &o, &code,
			       &err) < 0)
			code = 1;
	} else {
		Gitaly__SSHUploadArchiveRequest m = GITALY__SSHUPLOAD_ARCHIVE_REQUEST__INIT;
		m.repository = &repo;
		if (bidi_relay(conn, "/gitaly.SSHService/SSHUploadArchive", &m.base, 1, &o, &code,
			       &err) < 0)
			code = 1;
	}
out:
	if (error_is_set(&err)) {
		const char *msg = err.message ? err.message : "error";
		if (err.code == STATUS_UNAVAILABLE)
			log_msg(LOG_ERROR, "gitaly-gateway ssh: %s", msg);
		say("fatal: %s\n", msg);
		if (!code)
			code = 1;
	}
	error_release(&err);
	free(path);
	/* calls, connection and threads end with the process */
	strbuf_release(&gl_id);
	return code;
}
