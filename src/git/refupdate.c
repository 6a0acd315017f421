/*
 * The update-ref --stdin transaction driver. git runs for the whole
 * transaction; we write NUL-separated commands to its stdin and wait for
 * "<state>: ok" lines on its stdout after start, prepare and commit. Its
 * stderr is collected while we wait (so git never blocks on a full pipe) and
 * classified when it refuses, with the same shapes upstream matches.
 */
#include "git/refupdate.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/banned.h"
#include "base/strbuf.h"
#include "git/command.h"

#define STDERR_CAP ((size_t)64 * 1024)
#define STDOUT_LINE_CAP 4096

enum refupdate_state { ST_STARTED, ST_PREPARED, ST_DONE, ST_DEAD };

struct refupdate {
	pid_t pid;
	int in_fd, out_fd, err_fd;
	int reaped;
	enum refupdate_state state;
	size_t oid_len;
	struct strbuf out;  /* pending stdout bytes */
	struct strbuf errs; /* stderr so far */
	struct refupdate_failure failure;
};

static const char ZEROS[] = "0000000000000000000000000000000000000000000000000000000000000000";

const char *refupdate_failure_message(enum refupdate_failure_kind kind)
{
	switch (kind) {
	case REFUPDATE_FAIL_NONE: return "";
	case REFUPDATE_FAIL_LOCKED: return "reference is already locked";
	case REFUPDATE_FAIL_PACKED_REFS_LOCKED: return "packed-refs locked";
	case REFUPDATE_FAIL_INVALID_FORMAT: return "invalid reference format";
	case REFUPDATE_FAIL_FILE_DIR_CONFLICT: return "file directory conflict";
	case REFUPDATE_FAIL_IN_TX_CONFLICT:
		return "conflicting reference updates in the same transaction";
	case REFUPDATE_FAIL_NONEXISTENT_OBJECT: return "target object missing";
	case REFUPDATE_FAIL_NON_COMMIT: return "target object not a commit";
	case REFUPDATE_FAIL_MISMATCH: return "reference does not point to expected object";
	case REFUPDATE_FAIL_ALREADY_EXISTS: return "reference already exists";
	case REFUPDATE_FAIL_MULTIPLE_UPDATES:
		return "reference has been updated multiple times within a transaction";
	case REFUPDATE_FAIL_OTHER: return "update-ref failed";
	}
	return "update-ref failed";
}

void refupdate_failure_release(struct refupdate_failure *f)
{
	free(f->ref);
	free(f->other);
	free(f->oid);
	free(f->expected);
	free(f->actual);
	free(f->stderr_text);
	memset(f, 0, sizeof(*f));
}

static char *dup_range(const char *s, const char *e)
{
	return strndup(s, (size_t)(e - s));
}

/* The last occurrence of needle in [s, e), or NULL. */
static const char *find_last(const char *s, const char *e, const char *needle)
{
	size_t n = strlen(needle);
	const char *found = NULL;

	for (const char *p = s; p + n <= e; p++)
		if (memcmp(p, needle, n) == 0)
			found = p;
	return found;
}

/* Text of a one-line "fatal: ...\n" message without the final newline:
 * sets [*s, *e) and returns 1, or 0 when stderr has another shape. */
static int single_fatal_line(const char *text, const char **s, const char **e)
{
	size_t len = strlen(text);
	const char *nl;

	if (strncmp(text, "fatal: ", 7) != 0 || len < 8 || text[len - 1] != '\n')
		return 0;
	nl = memchr(text, '\n', len);
	if (nl != text + len - 1)
		return 0;
	*s = text;
	*e = text + len - 1;
	return 1;
}

/* Matches "<prefix>: cannot lock ref '<ref>': <rest>" where the ref is the
 * longest candidate followed by "': " + rest_start. Fills ref range and the
 * rest. Returns 1 on a match. */
static int lock_ref_line(const char *s, const char *e, const char *rest_start, const char **rs,
			 const char **re, const char **rest)
{
	const char *m = strstr(s, ": cannot lock ref '");
	struct strbuf pat = STRBUF_INIT;
	const char *hit;

	if (!m || m >= e)
		return 0;
	*rs = m + strlen(": cannot lock ref '");
	strbuf_adds(&pat, "': ");
	strbuf_adds(&pat, rest_start);
	hit = find_last(*rs, e, pat.buf);
	strbuf_release(&pat);
	if (!hit)
		return 0;
	*re = hit;
	*rest = hit + 3;
	return 1;
}

void refupdate_parse_stderr(const char *text, struct refupdate_failure *f)
{
	const char *s, *e, *rs, *re, *rest, *p, *q;
	size_t len = strlen(text);

	refupdate_failure_release(f);
	f->stderr_text = strdup(text);
	f->kind = REFUPDATE_FAIL_OTHER;

	/* Lock files held by someone else: the only shape allowed more lines. */
	if (strncmp(text, "fatal: prepare: cannot lock ref '", 33) == 0 ||
	    strncmp(text, "fatal: commit: cannot lock ref '", 32) == 0) {
		rs = strchr(text, '\'') + 1;
		p = strstr(rs, "': Unable to create '");
		if (p) {
			q = strstr(p + 21, "': File exists.");
			if (q) {
				f->kind = REFUPDATE_FAIL_LOCKED;
				f->ref = dup_range(rs, p);
				return;
			}
		}
	}
	if (strstr(text, "packed-refs.lock': File exists.\n") ||
	    (len >= 29 && strcmp(text + len - 29, "packed-refs.new: File exists\n") == 0)) {
		f->kind = REFUPDATE_FAIL_PACKED_REFS_LOCKED;
		return;
	}
	if (!single_fatal_line(text, &s, &e))
		return;
	if (strncmp(s, "fatal: invalid ref format: ", 27) == 0) {
		f->kind = REFUPDATE_FAIL_INVALID_FORMAT;
		f->ref = dup_range(s + 27, e);
		return;
	}
	if (lock_ref_line(s, e, "'", &rs, &re, &rest) && (p = find_last(rest, e, "' exists; cannot create '"))) {
		f->kind = REFUPDATE_FAIL_FILE_DIR_CONFLICT;
		f->ref = dup_range(rs, re);
		f->other = dup_range(rest + 1, p);
		return;
	}
	if (lock_ref_line(s, e, "cannot process '", &rs, &re, &rest) &&
	    (p = find_last(rest, e, "' at the same time")) && p + 18 == e &&
	    (q = find_last(rest, p, "' and '"))) {
		f->kind = REFUPDATE_FAIL_IN_TX_CONFLICT;
		f->ref = dup_range(rest + 16, q);
		f->other = dup_range(q + 7, p);
		return;
	}
	if ((p = strstr(s, ": trying to write ref '")) && (q = find_last(p, e, "' with nonexistent object "))) {
		f->kind = REFUPDATE_FAIL_NONEXISTENT_OBJECT;
		f->ref = dup_range(p + 23, q);
		f->oid = dup_range(q + 26, e);
		return;
	}
	if ((p = strstr(s, ": trying to write non-commit object ")) &&
	    (q = strstr(p, " to branch '")) && e[-1] == '\'') {
		f->kind = REFUPDATE_FAIL_NON_COMMIT;
		f->oid = dup_range(p + 36, q);
		f->ref = dup_range(q + 12, e - 1);
		return;
	}
	if (lock_ref_line(s, e, "is at ", &rs, &re, &rest) && (p = find_last(rest, e, " but expected "))) {
		f->kind = REFUPDATE_FAIL_MISMATCH;
		f->ref = dup_range(rs, re);
		f->actual = dup_range(rest + 6, p);
		f->expected = dup_range(p + 14, e);
		return;
	}
	if (lock_ref_line(s, e, "reference already exists", &rs, &re, &rest) &&
	    rest + 24 == e) {
		f->kind = REFUPDATE_FAIL_ALREADY_EXISTS;
		f->ref = dup_range(rs, re);
		return;
	}
	if ((p = strstr(s, ": multiple updates for ref '")) && e - p > 28 + 13 &&
	    memcmp(e - 13, "' not allowed", 13) == 0) {
		f->kind = REFUPDATE_FAIL_MULTIPLE_UPDATES;
		f->ref = dup_range(p + 28, e - 13);
		return;
	}
}

/* write(2) that turns a vanished reader into EPIPE instead of SIGPIPE. */
static int write_all(int fd, const char *buf, size_t len)
{
	sigset_t set, old;
	int ret = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			struct timespec zero = { 0, 0 };

			if (errno == EPIPE)
				sigtimedwait(&set, NULL, &zero);
			ret = -1;
			break;
		}
		buf += n;
		len -= (size_t)n;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

/* Reads whatever stderr has without blocking the transaction. */
static void drain_stderr(struct refupdate *u, int block)
{
	char buf[4096];

	while (u->err_fd >= 0) {
		struct pollfd pfd = { u->err_fd, POLLIN, 0 };
		ssize_t n;

		if (!block && poll(&pfd, 1, 0) <= 0)
			return;
		n = read(u->err_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(u->err_fd);
			u->err_fd = -1;
			return;
		}
		strbuf_add(&u->errs, buf, (size_t)n); /* beyond the cap: dropped */
	}
}

/* Waits for one stdout line; returns 0 with the line (no newline) moved into
 * line, or -1 on EOF/error. Collects stderr meanwhile. */
static int read_line(struct refupdate *u, struct strbuf *line)
{
	char buf[512];

	for (;;) {
		char *nl = u->out.len ? memchr(u->out.buf, '\n', u->out.len) : NULL;
		struct pollfd pfd[2];
		int n = 0;

		if (nl) {
			size_t take = (size_t)(nl - u->out.buf);

			strbuf_reset(line);
			strbuf_add(line, u->out.buf, take);
			memmove(u->out.buf, nl + 1, u->out.len - take - 1);
			u->out.len -= take + 1;
			u->out.buf[u->out.len] = '\0';
			return 0;
		}
		if (u->out_fd < 0)
			return -1;
		pfd[n++] = (struct pollfd){ u->out_fd, POLLIN, 0 };
		if (u->err_fd >= 0)
			pfd[n++] = (struct pollfd){ u->err_fd, POLLIN, 0 };
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n > 1 && pfd[1].revents)
			drain_stderr(u, 0);
		if (pfd[0].revents) {
			ssize_t r = read(u->out_fd, buf, sizeof(buf));

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				close(u->out_fd);
				u->out_fd = -1;
				continue;
			}
			if (strbuf_add(&u->out, buf, (size_t)r) < 0)
				return -1;
		}
	}
}

/* Closes stdin, collects the rest of stderr and reaps git. Returns git's
 * exit code (-1 when killed or not reapable). */
static int finish(struct refupdate *u)
{
	struct git_result res;

	if (u->in_fd >= 0) {
		close(u->in_fd);
		u->in_fd = -1;
	}
	drain_stderr(u, 1);
	if (u->out_fd >= 0) {
		close(u->out_fd);
		u->out_fd = -1;
	}
	if (u->reaped)
		return -1;
	u->reaped = 1;
	if (git_cmd_wait(u->pid, &res) < 0)
		return -1;
	return res.exit_code;
}

/* Marks the transaction dead after git refused or vanished, and reports. */
static int fail(struct refupdate *u, const char *what, struct error *err)
{
	int code = finish(u);

	u->state = ST_DEAD;
	refupdate_parse_stderr(u->errs.buf ? u->errs.buf : "", &u->failure);
	if (u->failure.kind != REFUPDATE_FAIL_OTHER)
		return error_set(err, STATUS_INTERNAL, "%s",
				 refupdate_failure_message(u->failure.kind));
	strbuf_rtrim(&u->errs);
	return error_set(err, STATUS_INTERNAL, "%s: exit status %d, stderr: %s", what, code,
			 u->errs.buf ? u->errs.buf : "");
}

static int set_state(struct refupdate *u, const char *state, struct error *err)
{
	struct strbuf line = STRBUF_INIT;
	char cmd[16];
	int n = snprintf(cmd, sizeof(cmd), "%s", state);
	int ret = -1;

	if (write_all(u->in_fd, cmd, (size_t)n + 1) < 0 || read_line(u, &line) < 0) {
		fail(u, state, err);
		goto out;
	}
	if (strncmp(line.buf, state, (size_t)n) != 0 || strcmp(line.buf + n, ": ok") != 0) {
		finish(u);
		u->state = ST_DEAD;
		error_set(err, STATUS_INTERNAL,
			  "state update to \"%s\" not successful: expected ok, got \"%s\"", state,
			  line.buf);
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&line);
	return ret;
}

int refupdate_begin(const char *repo_path, const struct refupdate_opts *opts,
		    struct refupdate **out, struct error *err)
{
	struct refupdate *u = calloc(1, sizeof(*u));
	struct git_cmd *cmd;
	int ret = -1;

	*out = NULL;
	if (!u)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	u->in_fd = u->out_fd = u->err_fd = -1;
	u->reaped = 1;
	u->oid_len = opts && opts->object_format && strcmp(opts->object_format, "sha256") == 0 ? 64 : 40;
	strbuf_init(&u->out, STDOUT_LINE_CAP);
	strbuf_init(&u->errs, STDERR_CAP);

	cmd = git_cmd_new(repo_path, "update-ref");
	for (size_t i = 0; opts && i < opts->n_config; i++) {
		const char *eq = strchr(opts->config[i], '=');
		char *key = eq ? strndup(opts->config[i], (size_t)(eq - opts->config[i])) : NULL;

		if (key)
			git_cmd_config(cmd, key, eq + 1);
		free(key);
	}
	git_cmd_flag(cmd, "-z");
	git_cmd_flag(cmd, "--stdin");
	if (opts && opts->no_deref)
		git_cmd_flag(cmd, "--no-deref");
	if (opts && opts->object_dir)
		git_cmd_setenv(cmd, "GIT_OBJECT_DIRECTORY", opts->object_dir);
	if (opts && opts->alternates)
		git_cmd_setenv(cmd, "GIT_ALTERNATE_OBJECT_DIRECTORIES", opts->alternates);
	for (size_t i = 0; opts && i < opts->n_env; i++) {
		const char *eq = strchr(opts->env[i], '=');
		char *name = eq ? strndup(opts->env[i], (size_t)(eq - opts->env[i])) : NULL;

		if (name)
			git_cmd_setenv(cmd, name, eq + 1);
		free(name);
	}
	if (git_cmd_start(cmd, &u->in_fd, &u->out_fd, &u->err_fd, &u->pid, err) < 0)
		goto out;
	u->reaped = 0;
	u->state = ST_STARTED;
	if (set_state(u, "start", err) < 0)
		goto out;
	*out = u;
	u = NULL;
	ret = 0;
out:
	refupdate_free(u);
	return ret;
}

int refupdate_update(struct refupdate *u, const char *ref, const char *new_oid,
		     const char *old_oid, struct error *err)
{
	struct strbuf cmd = STRBUF_INIT;
	int ret = -1;

	if (u->state != ST_STARTED)
		return error_set(err, STATUS_INTERNAL, "expected state \"started\"");
	if (strbuf_adds(&cmd, "update ") < 0 || strbuf_adds(&cmd, ref) < 0 ||
	    strbuf_addch(&cmd, '\0') < 0 || strbuf_adds(&cmd, new_oid) < 0 ||
	    strbuf_addch(&cmd, '\0') < 0 || strbuf_adds(&cmd, old_oid ? old_oid : "") < 0 ||
	    strbuf_addch(&cmd, '\0') < 0) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (write_all(u->in_fd, cmd.buf, cmd.len) < 0) {
		fail(u, "update", err);
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&cmd);
	return ret;
}

int refupdate_create(struct refupdate *u, const char *ref, const char *oid, struct error *err)
{
	char zero[65];

	memcpy(zero, ZEROS, u->oid_len);
	zero[u->oid_len] = '\0';
	return refupdate_update(u, ref, oid, zero, err);
}

int refupdate_delete(struct refupdate *u, const char *ref, struct error *err)
{
	char zero[65];

	memcpy(zero, ZEROS, u->oid_len);
	zero[u->oid_len] = '\0';
	return refupdate_update(u, ref, zero, NULL, err);
}

int refupdate_prepare(struct refupdate *u, struct error *err)
{
	if (u->state != ST_STARTED)
		return error_set(err, STATUS_INTERNAL, "expected state \"started\"");
	if (set_state(u, "prepare", err) < 0)
		return -1;
	u->state = ST_PREPARED;
	return 0;
}

int refupdate_commit(struct refupdate *u, struct error *err)
{
	int code;

	if (u->state != ST_STARTED && u->state != ST_PREPARED)
		return error_set(err, STATUS_INTERNAL, "expected state \"prepared\"");
	if (set_state(u, "commit", err) < 0)
		return -1;
	u->state = ST_DONE;
	code = finish(u);
	if (code != 0)
		return fail(u, "commit", err);
	return 0;
}

void refupdate_abort(struct refupdate *u)
{
	if (!u)
		return;
	if (u->state == ST_STARTED || u->state == ST_PREPARED) {
		/* Closing stdin without "commit" makes git roll back. */
		u->state = ST_DONE;
	}
	finish(u);
}

const struct refupdate_failure *refupdate_failure(const struct refupdate *u)
{
	return &u->failure;
}

void refupdate_free(struct refupdate *u)
{
	if (!u)
		return;
	refupdate_abort(u);
	strbuf_release(&u->out);
	strbuf_release(&u->errs);
	refupdate_failure_release(&u->failure);
	free(u);
}
