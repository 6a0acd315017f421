/*
 * CalculateChecksum: upstream's reference checksum. Each `git show-ref
 * --head` line that names HEAD or one of the well-known namespaces is
 * hashed with SHA-1 and the digests are XORed together; the result is
 * printed as the hex of a big-endian number, so leading zero bytes vanish.
 * No matching refs gives the all-zero checksum for a valid repository.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <openssl/evp.h>

#include "git/command.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

/* A refname longer than this cannot come from git (bufio.Scanner's limit upstream). */
#define LINE_CAP (64 * 1024)

static const char *const checksum_patterns[] = {
	"HEAD", "refs/heads/", "refs/tags/", "refs/keep-around/", "refs/merge-requests/",
	"refs/environments/", "refs/notes/",
};

int repo_checksum_add_line(unsigned char sum[20], const char *line, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	int match = 0;

	/* Upstream's pattern is unanchored: it matches anywhere in the line. */
	for (size_t i = 0; i < sizeof(checksum_patterns) / sizeof(checksum_patterns[0]); i++)
		if (memmem(line, len, checksum_patterns[i], strlen(checksum_patterns[i])))
			match = 1;
	if (!match)
		return 0;
	if (!EVP_Digest(line, len, md, &md_len, EVP_sha1(), NULL) || md_len != 20)
		return 0;
	for (int i = 0; i < 20; i++)
		sum[i] ^= md[i];
	return 1;
}

/* `git rev-parse --is-bare-repository` says "true". */
static int is_valid_repo(const char *repo_path, const struct service_git_env *genv)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "rev-parse");
	struct strbuf out;
	struct git_result res;
	struct error err = ERROR_INIT;
	int valid = 0;

	strbuf_init(&out, 256);
	git_cmd_flag(cmd, "--is-bare-repository");
	if (git_cmd_run(cmd, NULL, 0, &out, NULL, &res, &err) == 0 && res.exit_code == 0) {
		strbuf_rtrim(&out);
		valid = out.len && !strcasecmp(out.buf, "true");
	}
	error_release(&err);
	strbuf_release(&out);
	return valid;
}

int repo_checksum(const char *repo_path, const struct service_git_env *genv, char **out, struct error *err)
{
	unsigned char sum[20] = { 0 };
	struct git_cmd *cmd = service_git_new(repo_path, genv, "show-ref");
	struct git_result res = { 0 };
	FILE *f = NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	pid_t pid = -1;
	int fd = -1, ret = -1, failed = 0, nonzero = 0;

	git_cmd_flag(cmd, "--head");
	if (git_cmd_start(cmd, NULL, &fd, NULL, &pid, err) < 0) {
		error_prefix(err, "gitCommand");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	f = fdopen(fd, "r");
	if (!f) {
		error_set(err, STATUS_INTERNAL, "%s", strerror(errno));
		goto out;
	}
	fd = -1;
	while ((n = getline(&line, &cap, f)) >= 0) {
		size_t len = (size_t)n;

		if (len && line[len - 1] == '\n')
			len--;
		if (len > LINE_CAP) {
			error_set(err, STATUS_INTERNAL, "bufio.Scanner: token too long");
			goto out;
		}
		repo_checksum_add_line(sum, line, len);
	}
	fclose(f);
	f = NULL;
	if (git_cmd_wait(pid, &res) < 0 || res.exit_code != 0)
		failed = 1;
	pid = -1;

	for (int i = 0; i < 20; i++)
		nonzero |= sum[i];
	if (failed || !nonzero) {
		if (!is_valid_repo(repo_path, genv)) {
			error_set(err, STATUS_DATA_LOSS, "not a git repository '%s'", repo_path);
			goto out;
		}
		*out = strdup(REPO_ZERO_CHECKSUM);
	} else {
		struct strbuf hex = STRBUF_INIT;
		int i = 0;

		while (i < 20 && sum[i] == 0)
			i++;
		for (; i < 20; i++)
			strbuf_addf(&hex, "%02x", sum[i]);
		*out = strbuf_detach(&hex, NULL);
	}
	if (!*out) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	ret = 0;
out:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (pid > 0)
		git_cmd_wait(pid, &res);
	free(line);
	return ret;
}

int repository_checksum_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__CalculateChecksumRequest *req =
		(const Gitaly__CalculateChecksumRequest *)rpc_call_request(call);
	Gitaly__CalculateChecksumResponse resp = GITALY__CALCULATE_CHECKSUM_RESPONSE__INIT;
	char *path = NULL, *sum = NULL;
	struct service_git_env genvs = { 0 };
	const struct service_git_env *genv = &genvs;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genvs, path, req->repository, err) < 0)
		goto out;
	if (repo_checksum(path, genv, &sum, err) < 0)
		goto out;
	resp.checksum = sum;
	ret = rpc_call_send(call, &resp.base, err);
out:
	service_git_env_release(&genvs);
	free(sum);
	free(path);
	return ret;
}
