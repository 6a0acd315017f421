/*
 * The cat-file --batch-command reader: requests are "info <rev>" and
 * "contents <rev>" lines on stdin, answers "<oid> <type> <size>\n" (plus the
 * content and a newline) or "<rev> missing\n" / "<rev> ambiguous\n" on
 * stdout. Without --buffer git flushes after every command, so a request is
 * answered before the next is written. Any protocol surprise breaks the
 * reader for good: its owner drops it instead of reusing it.
 */
#include "git/catfile.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/strbuf.h"
#include "git/command.h"

/* Longest answer header: oid, type name, a 20-digit size. */
#define HEADER_CAP 256

struct catfile {
	pid_t pid;
	int in_fd, out_fd;
	int broken;
	char buf[65536];
	size_t start, end;
};

static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

/* A dead cat-file must surface as EPIPE, not kill the server. */
static void ignore_sigpipe(void)
{
	struct sigaction sa;

	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		sigaction(SIGPIPE, &sa, NULL);
	}
}

git_object_t catfile_type_from_name(const char *name, size_t len)
{
	if (len == 4 && !memcmp(name, "blob", 4))
		return GIT_OBJECT_BLOB;
	if (len == 4 && !memcmp(name, "tree", 4))
		return GIT_OBJECT_TREE;
	if (len == 6 && !memcmp(name, "commit", 6))
		return GIT_OBJECT_COMMIT;
	if (len == 3 && !memcmp(name, "tag", 3))
		return GIT_OBJECT_TAG;
	return GIT_OBJECT_INVALID;
}

int catfile_open(const char *repo_path, const char *object_dir, const char *alternates,
		 struct catfile **out, struct error *err)
{
	struct catfile *cf = calloc(1, sizeof(*cf));
	struct git_cmd *cmd;

	*out = NULL;
	if (!cf)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	pthread_once(&sigpipe_once, ignore_sigpipe);
	cf->in_fd = cf->out_fd = -1;
	cmd = git_cmd_new(repo_path, "cat-file");
	git_cmd_flag(cmd, "--batch-command");
	if (object_dir)
		git_cmd_setenv(cmd, "GIT_OBJECT_DIRECTORY", object_dir);
	if (alternates)
		git_cmd_setenv(cmd, "GIT_ALTERNATE_OBJECT_DIRECTORIES", alternates);
	if (git_cmd_start(cmd, &cf->in_fd, &cf->out_fd, NULL, &cf->pid, err) < 0) {
		error_prefix(err, "starting cat-file");
		free(cf);
		return -1;
	}
	*out = cf;
	return 0;
}

static int broken(struct catfile *cf, struct error *err, const char *what)
{
	cf->broken = 1;
	return error_set(err, STATUS_INTERNAL, "cat-file: %s", what);
}

static int write_all(int fd, const char *p, size_t len)
{
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

/* Refills the buffer; 0 at EOF, -1 on error. */
static ssize_t fill(struct catfile *cf)
{
	ssize_t n;

	if (cf->start == cf->end)
		cf->start = cf->end = 0;
	do
		n = read(cf->out_fd, cf->buf + cf->end, sizeof(cf->buf) - cf->end);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		cf->end += (size_t)n;
	return n;
}

/* Reads one line (without '\n') into line (cap bytes incl. NUL). */
static int read_line(struct catfile *cf, char *line, size_t cap, struct error *err)
{
	size_t len = 0;

	for (;;) {
		char *nl = memchr(cf->buf + cf->start, '\n', cf->end - cf->start);
		size_t take = nl ? (size_t)(nl - (cf->buf + cf->start)) : cf->end - cf->start;

		if (len + take >= cap)
			return broken(cf, err, "answer line too long");
		memcpy(line + len, cf->buf + cf->start, take);
		len += take;
		cf->start += take;
		if (nl) {
			cf->start++;
			line[len] = '\0';
			return 0;
		}
		cf->start = cf->end = 0;
		if (fill(cf) <= 0)
			return broken(cf, err, "unexpected end of output");
	}
}

static int read_exact(struct catfile *cf, char *dst, size_t len, struct error *err)
{
	while (len) {
		size_t have = cf->end - cf->start;

		if (!have) {
			if (fill(cf) <= 0)
				return broken(cf, err, "unexpected end of object data");
			continue;
		}
		if (have > len)
			have = len;
		if (dst) {
			memcpy(dst, cf->buf + cf->start, have);
			dst += have;
		}
		cf->start += have;
		len -= have;
	}
	return 0;
}

/* Sends "<cmd> <rev>\n" and parses the answer header. 1 found, 0 missing. */
static int request(struct catfile *cf, const char *cmd, const char *rev, char *oid,
		   git_object_t *type, int64_t *size, struct error *err)
{
	struct strbuf req = STRBUF_INIT;
	char line[HEADER_CAP + 4096];
	char *sp1, *sp2, *end;
	long long sz;
	int rc;

	if (cf->broken)
		return error_set(err, STATUS_INTERNAL, "cat-file: reader is broken");
	if (!*rev || strchr(rev, '\n') || strlen(rev) > 4000)
		return 0;
	strbuf_addf(&req, "%s %s\n", cmd, rev);
	rc = req.buf ? write_all(cf->in_fd, req.buf, req.len) : -1;
	strbuf_release(&req);
	if (rc < 0)
		return broken(cf, err, "writing request failed");
	if (read_line(cf, line, sizeof(line), err) < 0)
		return -1;
	sp2 = strrchr(line, ' ');
	if (sp2 && (!strcmp(sp2, " missing") || !strcmp(sp2, " ambiguous")))
		return 0;
	sp1 = strchr(line, ' ');
	if (!sp1 || !sp2 || sp1 == sp2 || (size_t)(sp1 - line) >= CATFILE_OID_MAX)
		return broken(cf, err, "malformed answer");
	*type = catfile_type_from_name(sp1 + 1, (size_t)(sp2 - sp1 - 1));
	errno = 0;
	sz = strtoll(sp2 + 1, &end, 10);
	if (*type == GIT_OBJECT_INVALID || errno || *end || sz < 0)
		return broken(cf, err, "malformed answer");
	memcpy(oid, line, (size_t)(sp1 - line));
	oid[sp1 - line] = '\0';
	*size = sz;
	return 1;
}

int catfile_info(struct catfile *cf, const char *rev, char *oid, git_object_t *type,
		 int64_t *size, struct error *err)
{
	return request(cf, "info", rev, oid, type, size, err);
}

int catfile_contents(struct catfile *cf, const char *rev, char *oid, git_object_t *type,
		     char **data, size_t *len, size_t max_size, struct error *err)
{
	int64_t size = 0;
	char *buf;
	int rc;

	*data = NULL;
	*len = 0;
	if (max_size) {
		/* Ask for the size first: a huge object must not be read whole. */
		rc = request(cf, "info", rev, oid, type, &size, err);
		if (rc <= 0)
			return rc;
		if ((uint64_t)size > max_size)
			return error_set(err, STATUS_INTERNAL, "object too large: %lld bytes",
					 (long long)size);
		rev = oid;
	}
	rc = request(cf, "contents", rev, oid, type, &size, err);
	if (rc <= 0)
		return rc;
	if ((uint64_t)size > SIZE_MAX - 2 || !(buf = malloc((size_t)size + 1))) {
		cf->broken = 1;
		return error_set(err, STATUS_INTERNAL, "out of memory");
	}
	if (read_exact(cf, buf, (size_t)size, err) < 0 || read_exact(cf, NULL, 1, err) < 0) {
		free(buf);
		return -1;
	}
	buf[size] = '\0';
	*data = buf;
	*len = (size_t)size;
	return 1;
}

pid_t catfile_pid(const struct catfile *cf)
{
	return cf->pid;
}

int catfile_usable(const struct catfile *cf)
{
	return cf && !cf->broken;
}

void catfile_close(struct catfile *cf)
{
	struct git_result res;

	if (!cf)
		return;
	if (cf->in_fd >= 0)
		close(cf->in_fd);
	if (cf->broken)
		git_cmd_kill(cf->pid);
	if (cf->out_fd >= 0)
		close(cf->out_fd);
	if (cf->pid > 0)
		(void)git_cmd_wait(cf->pid, &res);
	free(cf);
}
