/*
 * The CPU and memory watchers: small readers of cgroup and /proc files
 * (each read is capped at 64 KiB) and the threshold rules. The CPU watcher
 * keeps the stall counter and time of its previous poll; its first poll,
 * and any poll where the counter went backwards (limits changed, cgroup
 * recreated), never backs off.
 */
#include "limit/watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READ_CAP 65536

enum cpu_kind { CPU_CGROUP_V2, CPU_CGROUP_V1, CPU_HOST };

struct wstate {
	struct adaptive_watcher w;
	char *cgroup_dir;
	int cgroup_v1;
	char *proc_root;
	int64_t (*now_us)(void);
	int n_cpus;
	double threshold;
	/* CPU: previous poll */
	int have_last;
	int last_kind; /* 1: PSI/cgroup counter, 2: load average */
	uint64_t last_stall_us;
	int64_t last_poll_us;
};

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Reads a small file into buf (NUL-terminated). Returns 0 or -errno. */
static int read_small(const char *dir, const char *name, char *buf, size_t cap)
{
	char path[4096];
	int fd, ret = 0;
	size_t used = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (used + 1 < cap) {
		ssize_t n = read(fd, buf + used, cap - 1 - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = 0;
	close(fd);
	return ret;
}

/* Finds "<key> <number>" (key at a line start, then space or '=') in text. */
static int find_u64(const char *text, const char *key, char sep, uint64_t *out)
{
	size_t kl = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, key, kl) && p[kl] == sep) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(p + kl + 1, &end, 10);
			if (end == p + kl + 1 || errno)
				return -1;
			*out = v;
			return 0;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

/* "some avg10=.. avg60=.. avg300=.. total=N" -> N */
static int psi_some_total(const char *text, uint64_t *out)
{
	const char *p = strstr(text, "some ");
	const char *t;
	char *end;

	if (!p || (p != text && p[-1] != '\n'))
		return -1;
	t = strstr(p, "total=");
	if (!t || (strchr(p, '\n') && t > strchr(p, '\n')))
		return -1;
	errno = 0;
	*out = strtoull(t + 6, &end, 10);
	return (end == t + 6 || errno) ? -1 : 0;
}

static int poll_cpu(struct adaptive_watcher *w, struct adaptive_event *ev, struct error *err)
{
	struct wstate *s = w->state;
	char buf[READ_CAP];
	uint64_t stall_us = 0;
	int64_t now = s->now_us ? s->now_us() : mono_us();
	int kind = 1, rc;

	memset(ev, 0, sizeof(*ev));
	if (s->cgroup_dir) {
		rc = read_small(s->cgroup_dir, "cpu.stat", buf, sizeof(buf));
		if (rc < 0)
			goto fail_read;
		if (s->cgroup_v1) {
			uint64_t ns;
			if (find_u64(buf, "throttled_time", ' ', &ns) < 0)
				goto fail_parse;
			stall_us = ns / 1000;
		} else if (find_u64(buf, "throttled_usec", ' ', &stall_us) < 0) {
			goto fail_parse;
		}
	} else {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/pressure", s->proc_root);
		rc = read_small(dir, "cpu", buf, sizeof(buf));
		if (rc == 0) {
			if (psi_some_total(buf, &stall_us) < 0)
				goto fail_parse;
		} else {
			/* No PSI: the load average, compared at once. */
			double load;
			int ncpu = s->n_cpus > 0 ? s->n_cpus : (int)sysconf(_SC_NPROCESSORS_ONLN);
			rc = read_small(s->proc_root, "loadavg", buf, sizeof(buf));
			if (rc < 0)
				goto fail_read;
			if (sscanf(buf, "%lf", &load) != 1)
				goto fail_parse;
			if (ncpu < 1)
				ncpu = 1;
			s->have_last = 0;
			if (load > ncpu && (load - ncpu) / load > s->threshold) {
				ev->backoff = 1;
				snprintf(ev->reason, sizeof(ev->reason), "host CPU load too high");
				ev->stats = json_object();
				json_object_set_new(ev->stats, "load1", json_real(load));
				json_object_set_new(ev->stats, "cpus", json_integer(ncpu));
				json_object_set_new(ev->stats, "threshold", json_real(s->threshold));
			}
			return 0;
		}
	}

	if (s->have_last && s->last_kind == kind && stall_us >= s->last_stall_us &&
	    now > s->last_poll_us) {
		double stalled = (double)(stall_us - s->last_stall_us) / 1e6;
		double window = (double)(now - s->last_poll_us) / 1e6;
		if (stalled / window > s->threshold) {
			ev->backoff = 1;
			snprintf(ev->reason, sizeof(ev->reason), "%s",
				 s->cgroup_dir ? "cgroup CPU throttled too much"
					       : "host CPU pressure too high");
			ev->stats = json_object();
			json_object_set_new(ev->stats, "time_diff", json_real(window));
			json_object_set_new(ev->stats, "throttled_duration", json_real(stalled));
			json_object_set_new(ev->stats, "throttled_threshold", json_real(s->threshold));
		}
	}
	s->have_last = 1;
	s->last_kind = kind;
	s->last_stall_us = stall_us;
	s->last_poll_us = now;
	return 0;

fail_read:
	error_set(err, STATUS_INTERNAL, "%s watcher: reading CPU figures: %s", w->name,
		  strerror(-rc));
	return ADAPTIVE_POLL_ERROR;
fail_parse:
	error_set(err, STATUS_INTERNAL, "%s watcher: unexpected CPU figures", w->name);
	return ADAPTIVE_POLL_ERROR;
}

static void set_mem_event(struct adaptive_event *ev, const char *reason, double used, double inactive,
			  double limit, double threshold)
{
	ev->backoff = 1;
	snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
	ev->stats = json_object();
	json_object_set_new(ev->stats, "memory_usage", json_real(used));
	json_object_set_new(ev->stats, "inactive_file", json_real(inactive));
	json_object_set_new(ev->stats, "memory_limit", json_real(limit));
	json_object_set_new(ev->stats, "memory_threshold", json_real(threshold));
}

static int poll_memory(struct adaptive_watcher *w, struct adaptive_event *ev, struct error *err)
{
	struct wstate *s = w->state;
	char buf[READ_CAP];
	uint64_t usage = 0, limit = 0, inactive = 0;
	int rc;

	memset(ev, 0, sizeof(*ev));
	if (!s->cgroup_dir) {
		uint64_t total, avail;
		rc = read_small(s->proc_root, "meminfo", buf, sizeof(buf));
		if (rc < 0)
			goto fail_read;
		/* "MemTotal:       16318412 kB" (strtoull skips the blanks) */
		if (find_u64(buf, "MemTotal", ':', &total) < 0 ||
		    find_u64(buf, "MemAvailable", ':', &avail) < 0)
			goto fail_parse;
		if (total > 0 && avail <= total &&
		    (double)(total - avail) / (double)total >= s->threshold)
			set_mem_event(ev, "host memory exceeds threshold", (double)(total - avail) * 1024,
				      0, (double)total * 1024, s->threshold);
		return 0;
	}

	if (s->cgroup_v1) {
		uint64_t under = 0;
		if (read_small(s->cgroup_dir, "memory.oom_control", buf, sizeof(buf)) == 0 &&
		    find_u64(buf, "under_oom", ' ', &under) == 0 && under) {
			ev->backoff = 1;
			snprintf(ev->reason, sizeof(ev->reason), "cgroup is under OOM");
			return 0;
		}
		rc = read_small(s->cgroup_dir, "memory.usage_in_bytes", buf, sizeof(buf));
		if (rc < 0)
			goto fail_read;
		usage = strtoull(buf, NULL, 10);
		rc = read_small(s->cgroup_dir, "memory.limit_in_bytes", buf, sizeof(buf));
		if (rc < 0)
			goto fail_read;
		limit = strtoull(buf, NULL, 10);
		rc = read_small(s->cgroup_dir, "memory.stat", buf, sizeof(buf));
		if (rc < 0)
			goto fail_read;
		if (find_u64(buf, "total_inactive_file", ' ', &inactive) < 0)
			inactive = 0;
	} else {
		rc = read_small(s->cgroup_dir, "memory.current", buf, sizeof(buf));
		if (rc < 0)
			goto fail_read;
		usage = strtoull(buf, NULL, 10);
		rc = read_small(s->cgroup_dir, "memory.max", buf, sizeof(buf));
		if (rc < 0)
			goto fail_read;
		limit = strncmp(buf, "max", 3) ? strtoull(buf, NULL, 10) : 0;
		rc = read_small(s->cgroup_dir, "memory.stat", buf, sizeof(buf));
		if (rc < 0)
			goto fail_read;
		if (find_u64(buf, "inactive_file", ' ', &inactive) < 0)
			inactive = 0;
	}
	if (limit > 0 && usage > 0 && usage >= inactive &&
	    (double)(usage - inactive) / (double)limit >= s->threshold)
		set_mem_event(ev, "cgroup memory exceeds threshold", (double)usage, (double)inactive,
			      (double)limit, s->threshold);
	return 0;

fail_read:
	error_set(err, STATUS_INTERNAL, "%s watcher: reading memory figures: %s", w->name,
		  strerror(-rc));
	return ADAPTIVE_POLL_ERROR;
fail_parse:
	error_set(err, STATUS_INTERNAL, "%s watcher: unexpected memory figures", w->name);
	return ADAPTIVE_POLL_ERROR;
}

static void wstate_free(struct adaptive_watcher *w)
{
	struct wstate *s = w->state;
	free(s->cgroup_dir);
	free(s->proc_root);
	free(s);
}

static struct adaptive_watcher *make(const struct watcher_source *src, double threshold,
				     const char *cg_name, const char *host_name,
				     int (*poll)(struct adaptive_watcher *, struct adaptive_event *,
						 struct error *))
{
	struct wstate *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->cgroup_dir = src->cgroup_dir ? strdup(src->cgroup_dir) : NULL;
	s->proc_root = strdup(src->proc_root ? src->proc_root : "/proc");
	if ((src->cgroup_dir && !s->cgroup_dir) || !s->proc_root) {
		free(s->cgroup_dir);
		free(s->proc_root);
		free(s);
		return NULL;
	}
	s->cgroup_v1 = src->cgroup_v1;
	s->now_us = src->now_us;
	s->n_cpus = src->n_cpus;
	s->threshold = threshold;
	s->w.name = s->cgroup_dir ? cg_name : host_name;
	s->w.poll = poll;
	s->w.free = wstate_free;
	s->w.state = s;
	return &s->w;
}

struct adaptive_watcher *watcher_cpu_new(const struct watcher_source *src, double threshold)
{
	return make(src, threshold > 0 ? threshold : 0.5, "CgroupCpu", "HostCpu", poll_cpu);
}

struct adaptive_watcher *watcher_memory_new(const struct watcher_source *src, double threshold)
{
	return make(src, threshold > 0 ? threshold : 0.9, "CgroupMemory", "HostMemory", poll_memory);
}
