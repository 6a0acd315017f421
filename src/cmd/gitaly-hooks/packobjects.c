/*
 * gitaly-hooks as uploadpack.packObjectsHook: upload-pack runs
 * `gitaly-hooks git [--shallow-file ""] pack-objects --stdout ...`. We
 * listen on a fresh unix socket `<runtime>/chan.d/<random>/sidechannel`,
 * call HookService/PackObjectsHookWithSidechannel with its path in the
 * `gitaly-sidechannel-socket` metadata, and when gitaly connects, copy our
 * stdin to it, half-close, and split its side-band packets back onto our
 * stdout (band 1) and stderr (band 2). Exit 0 only when both the RPC and
 * the copy succeeded.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>

#include "client.h"
#include "hook.pb-c.h"

#define PKT_MAX 65520

struct channel {
	int lfd;
	int stop[2];
	char dir[4096];
	char path[4096];
	int ok;
	char why[256];
};

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static void cleanup_dir(struct channel *ch)
{
	if (ch->path[0])
		unlink(ch->path);
	if (ch->dir[0])
		rmdir(ch->dir);
	ch->path[0] = ch->dir[0] = '\0';
}

/*
 * The demultiplexer's buffer: large reads take whatever the socket holds
 * (several packets at once), and every complete band-1 payload in it goes
 * out in one writev, so the system calls per MiB stay few.
 */
#define RELAY_BUF ((size_t)512 * 1024)
#define RELAY_IOV 64
/* upload-pack reads our stdout; a larger pipe lets us run ahead of it
 * instead of sleeping every 64 KiB (best effort; the default max is 1 MiB). */
#define STDOUT_PIPE_SIZE (1 << 20)

/* Writes every iovec completely (writev may stop short). */
static int writev_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int stdout_is_pipe(void)
{
	struct stat st;
	return fstat(1, &st) == 0 && S_ISFIFO(st.st_mode);
}

static void grow_stdout_pipe(void)
{
	if (fcntl(1, F_GETPIPE_SZ) < STDOUT_PIPE_SIZE)
		(void)fcntl(1, F_SETPIPE_SZ, STDOUT_PIPE_SIZE);
}

/* Parses a pkt-line length prefix; -1 when it is not 4 hex digits. */
static long pkt_len(const char *p)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int c = (unsigned char)p[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/*
 * Splits gitaly's side-band stream: band 1 to stdout, band 2 to stderr,
 * flush packets skipped. Returns 0 at a clean end of stream (EOF on a
 * packet boundary), -1 with ch->why set.
 */
static int demux(struct channel *ch, int conn, char *buf)
{
	size_t have = 0;
	int ret = -1;

	for (;;) {
		ssize_t n = read(conn, buf + have, RELAY_BUF - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(ch->why, sizeof(ch->why), "read packet: %s", strerror(errno));
			goto out;
		}
		if (n == 0) {
			if (have) {
				snprintf(ch->why, sizeof(ch->why),
					 have < 4 ? "read packet header: unexpected EOF"
						  : "read packet: unexpected EOF");
				goto out;
			}
			break;
		}
		have += (size_t)n;

		struct iovec iov[RELAY_IOV];
		int niov = 0;
		size_t pos = 0;
		while (have - pos >= 4) {
			long len = pkt_len(buf + pos);
			if (len == 0 || len < 0) {
				/* flush (or, as before, anything unparseable as a
				 * length): four bytes with nothing to relay */
				pos += 4;
				continue;
			}
			if (len < 5 || len > PKT_MAX) {
				snprintf(ch->why, sizeof(ch->why), "invalid packet length %ld", len);
				goto out;
			}
			if (have - pos < (size_t)len)
				break;
			int band = (unsigned char)buf[pos + 4];
			if (band != 1 && band != 2) {
				snprintf(ch->why, sizeof(ch->why), "unexpected side band: %d", band);
				goto out;
			}
			if (band == 2 || niov == RELAY_IOV) {
				if (writev_all(1, iov, niov) < 0) {
					snprintf(ch->why, sizeof(ch->why), "write band 1: %s",
						 strerror(errno));
					goto out;
				}
				niov = 0;
			}
			if (band == 2) {
				if (write_all(2, buf + pos + 5, (size_t)len - 5) < 0) {
					snprintf(ch->why, sizeof(ch->why), "write band 2: %s",
						 strerror(errno));
					goto out;
				}
			} else if (len > 5) {
				iov[niov].iov_base = buf + pos + 5;
				iov[niov].iov_len = (size_t)len - 5;
				niov++;
			}
			pos += (size_t)len;
		}
		if (niov && writev_all(1, iov, niov) < 0) {
			snprintf(ch->why, sizeof(ch->why), "write band 1: %s", strerror(errno));
			goto out;
		}
		/* Keep the partial packet (at most one) for the next read. */
		if (pos < have)
			memmove(buf, buf + pos, have - pos);
		have -= pos;
	}
	ret = 0;
out:
	return ret;
}

/* Reads exactly len bytes; 1 when done, 0 on EOF before any byte, -1 else. */
static int read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return got ? -1 : 0;
		got += (size_t)n;
	}
	return 1;
}

/*
 * Moves len bytes from the socket to stdout without copying them through
 * user space. Returns 1 when done, 0 when splice cannot be used for these
 * descriptors (nothing was moved), -1 on failure or EOF (ch->why set).
 */
static int splice_out(struct channel *ch, int conn, size_t len)
{
	size_t moved = 0;
	while (moved < len) {
		ssize_t n = splice(conn, NULL, 1, NULL, len - moved, SPLICE_F_MOVE | SPLICE_F_MORE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && moved == 0 && (errno == EINVAL || errno == ENOSYS))
			return 0;
		if (n < 0) {
			snprintf(ch->why, sizeof(ch->why), "write band 1: %s", strerror(errno));
			return -1;
		}
		if (n == 0) {
			snprintf(ch->why, sizeof(ch->why), "read packet: unexpected EOF");
			return -1;
		}
		moved += (size_t)n;
	}
	return 1;
}

/*
 * The splice flavour of demux, used when stdout is a pipe (upload-pack's):
 * each packet's 5-byte header is read, a band-1 payload is spliced to
 * stdout, so the pack bytes go from gitaly's socket into upload-pack's pipe
 * without a copy through this process. Returns 0 at a clean end, 1 when
 * splice turned out to be unusable before any byte was relayed (the caller
 * falls back to demux), -1 with ch->why set.
 */
static int demux_splice(struct channel *ch, int conn, char *buf)
{
	int relayed = 0;
	char hdr[5];
	size_t h = 0; /* bytes of the next header already read */

	for (;;) {
		/* One read normally takes a whole 5-byte header; after a flush
		 * packet the fifth byte read is the start of the next header. */
		while (h < 4) {
			ssize_t n = read(conn, hdr + h, sizeof(hdr) - h);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0 && h == 0)
				return 0;
			if (n <= 0) {
				snprintf(ch->why, sizeof(ch->why), "read packet header: unexpected EOF");
				return -1;
			}
			h += (size_t)n;
		}
		long len = pkt_len(hdr);
		if (len <= 0) { /* flush packet: nothing to relay */
			memmove(hdr, hdr + 4, h - 4);
			h -= 4;
			continue;
		}
		if (len < 5 || len > PKT_MAX) {
			snprintf(ch->why, sizeof(ch->why), "invalid packet length %ld", len);
			return -1;
		}
		if (h < 5 && read_full(conn, hdr + 4, 1) != 1) {
			snprintf(ch->why, sizeof(ch->why), "read packet: unexpected EOF");
			return -1;
		}
		h = 0;
		int r;
		int band = (unsigned char)hdr[4];
		if (band == 1) {
			r = len > 5 ? splice_out(ch, conn, (size_t)len - 5) : 1;
			if (r < 0)
				return -1;
			if (r == 0) {
				if (relayed) {
					snprintf(ch->why, sizeof(ch->why), "write band 1: splice failed");
					return -1;
				}
				/* Finish this packet by copying; demux takes the rest. */
				if (read_full(conn, buf, (size_t)len - 5) != 1) {
					snprintf(ch->why, sizeof(ch->why), "read packet: unexpected EOF");
					return -1;
				}
				if (write_all(1, buf, (size_t)len - 5) < 0) {
					snprintf(ch->why, sizeof(ch->why), "write band 1: %s",
						 strerror(errno));
					return -1;
				}
				return 1;
			}
			relayed = 1;
		} else if (band == 2) {
			if (read_full(conn, buf, (size_t)len - 5) != 1) {
				snprintf(ch->why, sizeof(ch->why), "read packet: unexpected EOF");
				return -1;
			}
			if (write_all(2, buf, (size_t)len - 5) < 0) {
				snprintf(ch->why, sizeof(ch->why), "write band 2: %s", strerror(errno));
				return -1;
			}
		} else {
			snprintf(ch->why, sizeof(ch->why), "unexpected side band: %d", band);
			return -1;
		}
	}
}

/* Serves the one connection gitaly makes. */
static int serve(struct channel *ch, int conn)
{
	char *buf = malloc(RELAY_BUF);
	int ret = -1;

	if (!buf)
		goto out;
	for (;;) {
		ssize_t n = read(0, buf, RELAY_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(ch->why, sizeof(ch->why), "copy stdin: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (write_all(conn, buf, (size_t)n) < 0) {
			snprintf(ch->why, sizeof(ch->why), "copy stdin: %s", strerror(errno));
			goto out;
		}
	}
	if (shutdown(conn, SHUT_WR) < 0) {
		snprintf(ch->why, sizeof(ch->why), "close write: %s", strerror(errno));
		goto out;
	}
	if (stdout_is_pipe()) {
		grow_stdout_pipe();
		ret = demux_splice(ch, conn, buf);
		if (ret != 1)
			goto out;
	}
	ret = demux(ch, conn, buf);
out:
	free(buf);
	return ret;
}

static void *channel_main(void *arg)
{
	struct channel *ch = arg;
	struct pollfd pf[2] = {{ch->lfd, POLLIN, 0}, {ch->stop[0], POLLIN, 0}};

	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(ch->why, sizeof(ch->why), "poll: %s", strerror(errno));
			return NULL;
		}
		break;
	}
	if (pf[1].revents || !pf[0].revents) {
		snprintf(ch->why, sizeof(ch->why), "sidechannel never connected");
		return NULL;
	}
	int conn = accept4(ch->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0) {
		snprintf(ch->why, sizeof(ch->why), "accept: %s", strerror(errno));
		return NULL;
	}
	/* Nothing else may connect; the directory goes right away. */
	cleanup_dir(ch);
	ch->ok = serve(ch, conn) == 0;
	close(conn);
	return NULL;
}

static int channel_listen(struct channel *ch, const struct hook_payload *p)
{
	struct sockaddr_un sa;

	ch->lfd = -1;
	ch->stop[0] = ch->stop[1] = -1;
	if (p->runtime_dir && *p->runtime_dir) {
		char base[2048];
		if (strlen(p->runtime_dir) > 1024) {
			errno = ENAMETOOLONG;
			return -1;
		}
		snprintf(base, sizeof(base), "%s/chan.d", p->runtime_dir);
		if (mkdir(base, 0700) < 0 && errno != EEXIST)
			return -1;
		snprintf(ch->dir, sizeof(ch->dir), "%s/XXXXXX", base);
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(ch->dir, sizeof(ch->dir), "%.2048s/gitalyXXXXXX", tmp && *tmp ? tmp : "/tmp");
	}
	if (!mkdtemp(ch->dir)) {
		ch->dir[0] = '\0';
		return -1;
	}
	if (strlen(ch->dir) + sizeof("/sidechannel") > sizeof(ch->path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(ch->path, sizeof(ch->path), "%.3000s/sidechannel", ch->dir);
	if (strlen(ch->path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, ch->path, strlen(ch->path));
	ch->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ch->lfd < 0 || bind(ch->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(ch->lfd, 1) < 0 || pipe(ch->stop) < 0)
		return -1;
	return 0;
}

/* Receives the unary response and the status. */
static int recv_unary(struct client *c, grpc_status_code *code, char **details)
{
	grpc_metadata_array init_md, trail;
	grpc_byte_buffer *bb = NULL;
	grpc_slice d;
	grpc_op ops[3];
	int tag = 7, ok;

	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[0].data.recv_initial_metadata.recv_initial_metadata = &init_md;
	ops[1].op = GRPC_OP_RECV_MESSAGE;
	ops[1].data.recv_message.recv_message = &bb;
	ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[2].data.recv_status_on_client.trailing_metadata = &trail;
	ops[2].data.recv_status_on_client.status = code;
	ops[2].data.recv_status_on_client.status_details = &d;
	ok = grpc_call_start_batch(c->call, ops, 3, &tag, NULL) == GRPC_CALL_OK &&
	     wait_tag(c, &tag) == 0;
	if (ok) {
		*details = grpc_slice_to_c_string(d);
		grpc_slice_unref(d);
	}
	if (bb)
		grpc_byte_buffer_destroy(bb);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail);
	return ok ? 0 : -1;
}

int pack_objects_hook(int argc, char **argv, const struct hook_payload *p)
{
	struct channel ch;
	struct client c;
	Gitaly__Repository repo = GITALY__REPOSITORY__INIT;
	Gitaly__PackObjectsHookWithSidechannelRequest req =
		GITALY__PACK_OBJECTS_HOOK_WITH_SIDECHANNEL_REQUEST__INIT;
	grpc_status_code code = GRPC_STATUS_UNKNOWN;
	char *details = NULL;
	pthread_t t;
	int started = 0, exit_code = 1, i = 0;

	memset(&ch, 0, sizeof(ch));
	memset(&c, 0, sizeof(c));
	if (argc >= 2 && !strcmp(argv[0], "--shallow-file"))
		i = 2;
	if (i >= argc || strcmp(argv[i], "pack-objects")) {
		fprintf(stderr, "error executing git hook: unexpected git subcommand\n");
		goto out;
	}
	if (channel_listen(&ch, p) < 0) {
		fprintf(stderr, "error executing git hook: SetupSidechannel: %s\n", strerror(errno));
		goto out;
	}
	if (pthread_create(&t, NULL, channel_main, &ch) != 0)
		goto out;
	started = 1;

	repo.storage_name = p->repo.storage_name ? p->repo.storage_name : "";
	repo.relative_path = p->repo.relative_path ? p->repo.relative_path : "";
	repo.git_object_directory = p->repo.git_object_directory ? p->repo.git_object_directory : "";
	repo.git_alternate_object_directories = p->repo.git_alternate_object_directories;
	repo.n_git_alternate_object_directories = p->repo.n_git_alternate_object_directories;
	repo.gl_repository = p->repo.gl_repository ? p->repo.gl_repository : "";
	repo.gl_project_path = p->repo.gl_project_path ? p->repo.gl_project_path : "";
	req.repository = &repo;
	req.args = argv;
	req.n_args = (size_t)argc;
	req.gl_id = p->userid ? p->userid : "";
	req.gl_username = p->username ? p->username : "";
	req.git_protocol = p->protocol ? p->protocol : "";
	req.remote_ip = p->remote_ip ? p->remote_ip : "";

	add_md(&c, "gitaly-sidechannel-socket", ch.path);
	add_md(&c, "protocol", p->protocol);
	if (start_call(&c, p, "/gitaly.HookService/PackObjectsHookWithSidechannel") < 0 ||
	    send_msg(&c, &req.base, 1) < 0 || recv_unary(&c, &code, &details) < 0) {
		fprintf(stderr, "error executing git hook: RPC failed\n");
		goto out;
	}
	if (code == GRPC_STATUS_RESOURCE_EXHAUSTED) {
		fprintf(stderr, "error resource exhausted, please try again later\n");
		goto out;
	}
	if (code != GRPC_STATUS_OK) {
		fprintf(stderr, "error executing git hook: RPC failed: call "
				"PackObjectsHookWithSidechannel: rpc error: code = %d desc = %s\n",
			(int)code, details ? details : "");
		goto out;
	}
	/* gitaly connected (it answered OK): the thread ends with the copy. */
	pthread_join(t, NULL);
	started = 0;
	if (!ch.ok) {
		fprintf(stderr, "error executing git hook: %s\n", ch.why);
		goto out;
	}
	exit_code = 0;
out:
	if (started) {
		if (ch.stop[1] >= 0 && write(ch.stop[1], "x", 1) < 0) {
			/* nothing more to do */
		}
		pthread_join(t, NULL);
	}
	if (details)
		gpr_free(details);
	cleanup_dir(&ch);
	if (ch.lfd >= 0)
		close(ch.lfd);
	if (ch.stop[0] >= 0)
		close(ch.stop[0]);
	if (ch.stop[1] >= 0)
		close(ch.stop[1]);
	/* No client_close: main exits right after, without grpc_shutdown. */
	return exit_code;
}
