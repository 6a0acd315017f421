/*
 * The pack-objects cache core (see cache.h). One mutex guards the index and
 * the occurrence counters; each entry has its own mutex and condition
 * variable for the producer's progress, so readers of one entry never wait
 * on another. Lock order: cache, then entry. Entries are reference counted:
 * the index, the producer thread and each reader hold one reference, so a
 * file evicted from the index (and unlinked) stays readable through the
 * open descriptor by the readers already attached.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "base/metrics.h"
#include "packcache/cache.h"

#define N_BUCKETS 4096
/* Cap on distinct keys counted per generation (memory bound). */
#define MAX_COUNTED_KEYS 200000
/* Keys longer than this are refused (ours are 64 hex digits). */
#define MAX_KEY_LEN 128
/* One sendfile(2) call moves at most this much. */
#define SENDFILE_CHUNK ((size_t)4 << 20)
#define CLEAN_PERIOD_MAX_MS 60000
/*
 * A reader's output, when it is a socket, gets a send buffer of up to this
 * (the kernel caps it at net.core.wmem_max and doubles it): sendfile queues
 * the entry's page-cache pages on the socket without copying them, so a
 * larger buffer costs little memory, and the reader sleeps and wakes once
 * per few MiB its client drains instead of once per ~150 KiB (the default
 * 208 KiB buffer, woken when a quarter full).
 */
#define READER_SNDBUF (4 << 20)

struct entry {
	struct entry *next; /* hash chain */
	char *key;
	char *path;
	int fd;
	int64_t created_ms;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	uint64_t written;
	int done, failed;
	struct error ferr;
	int readers;
	int refs;     /* guarded by the cache mutex */
	int in_index; /* guarded by the cache mutex */
};

struct counter {
	struct counter *next;
	int64_t n;
	char key[];
};

struct counters {
	struct counter **b;
	size_t n;
};

struct packcache {
	char *dir;
	int64_t max_age_ms, min_occurrences;
	pthread_mutex_t mu;
	pthread_cond_t idle; /* signalled when producers reaches 0 */
	struct entry **index;
	size_t n_entries;
	struct counters cur, prev;
	int64_t gen_start_ms;
	unsigned counter;
	char procid[21];
	int producers;
	int stop;
	int cleaner_started;
	pthread_t cleaner;
	pthread_cond_t stop_cond;
};

struct packcache_sink {
	struct entry *e; /* NULL: direct mode */
	int fd;          /* direct mode: the requester's output */
	uint64_t bytes;
};

static struct metric_family *m_entries, *m_usage, *m_removed, *m_sendfile;

static void metrics_init_once(void)
{
	static const char *const dir_label[] = {"dir"};

	m_entries = metrics_gauge("gitaly_streamcache_index_entries",
				  "Number of index entries in streamcache", dir_label, 1);
	m_usage = metrics_gauge("gitaly_streamcache_filestore_disk_usage_bytes",
				"Disk usage per filestore", dir_label, 1);
	m_removed = metrics_counter("gitaly_streamcache_filestore_removed_total",
				    "Number of files removed from filestore", dir_label, 1);
	m_sendfile = metrics_counter("gitaly_streamcache_sendfile_bytes_total",
				     "Number of bytes sent using sendfile", NULL, 0);
}

static void metrics_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, metrics_init_once);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t hash_key(const char *s)
{
	size_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h % N_BUCKETS;
}

/* ---- occurrence counters ------------------------------------------------ */

static int counters_init(struct counters *m)
{
	m->b = calloc(N_BUCKETS, sizeof(*m->b));
	m->n = 0;
	return m->b ? 0 : -1;
}

static void counters_release(struct counters *m)
{
	for (size_t i = 0; m->b && i < N_BUCKETS; i++) {
		struct counter *k = m->b[i], *next;
		for (; k; k = next) {
			next = k->next;
			free(k);
		}
	}
	free(m->b);
	m->b = NULL;
	m->n = 0;
}

static struct counter *counters_get(struct counters *m, const char *key)
{
	for (struct counter *k = m->b[hash_key(key)]; k; k = k->next)
		if (!strcmp(k->key, key))
			return k;
	return NULL;
}

/*
 * Counts one more request for key and returns the count over the current
 * generation, which starts from the previous generation's count as
 * upstream does. Rotates generations once max_age has passed.
 */
static int64_t count_occurrence(struct packcache *c, const char *key)
{
	int64_t now = now_ms();
	struct counters fresh;

	if (now - c->gen_start_ms > c->max_age_ms && counters_init(&fresh) == 0) {
		counters_release(&c->prev);
		c->prev = c->cur;
		c->cur = fresh;
		c->gen_start_ms = now;
	}
	struct counter *k = counters_get(&c->cur, key);
	if (!k) {
		struct counter *old = counters_get(&c->prev, key);
		int64_t start = old ? old->n : 0;
		size_t len = strlen(key);
		if (c->cur.n >= MAX_COUNTED_KEYS || !(k = malloc(sizeof(*k) + len + 1)))
			return start + 1;
		memcpy(k->key, key, len + 1);
		k->n = start;
		size_t h = hash_key(key);
		k->next = c->cur.b[h];
		c->cur.b[h] = k;
		c->cur.n++;
	}
	return ++k->n;
}

/* ---- entries ------------------------------------------------------------ */

static void publish_entries(struct packcache *c)
{
	const char *lv[] = {c->dir};
	metrics_set(m_entries, lv, (double)c->n_entries);
}

/* Drops one reference; the caller holds the cache mutex. */
static void entry_unref(struct entry *e)
{
	if (--e->refs > 0)
		return;
	if (e->fd >= 0)
		close(e->fd);
	free(e->key);
	free(e->path);
	error_release(&e->ferr);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cond);
	free(e);
}

/* Removes e from the index and its file from disk; cache mutex held. */
static void index_remove(struct packcache *c, struct entry *e)
{
	struct entry **pp;

	if (!e->in_index)
		return;
	for (pp = &c->index[hash_key(e->key)]; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	e->in_index = 0;
	e->next = NULL;
	c->n_entries--;
	if (unlink(e->path) == 0) {
		const char *lv[] = {c->dir};
		metrics_add(m_removed, lv, 1);
	}
	publish_entries(c);
	entry_unref(e);
}

static struct entry *index_get(struct packcache *c, const char *key)
{
	for (struct entry *e = c->index[hash_key(key)]; e; e = e->next)
		if (!strcmp(e->key, key))
			return e;
	return NULL;
}

/* A new entry file <dir>/<xx>/<procid>-<n>, opened O_EXCL; cache mutex held. */
static int entry_create(struct packcache *c, const char *key, struct entry **out,
			struct error *err)
{
	struct entry *e = calloc(1, sizeof(*e));
	unsigned n = ++c->counter;
	char sub[4096];
	int ret = -1;

	if (!e)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	e->fd = -1;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cond, NULL);
	e->key = strdup(key);
	snprintf(sub, sizeof(sub), "%s/%02x", c->dir, n & 0xffu);
	if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
		error_set(err, STATUS_INTERNAL, "streamcache: mkdir %s: %s", sub, strerror(errno));
		goto out;
	}
	size_t plen = strlen(sub) + 1 + 20 + 1 + 10 + 1;
	e->path = malloc(plen);
	if (!e->key || !e->path) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	snprintf(e->path, plen, "%s/%s-%u", sub, c->procid, n);
	e->fd = open(e->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (e->fd < 0) {
		error_set(err, STATUS_INTERNAL, "streamcache: create %s: %s", e->path,
			  strerror(errno));
		goto out;
	}
	e->created_ms = now_ms();
	ret = 0;
out:
	if (ret < 0) {
		e->refs = 1;
		entry_unref(e);
		e = NULL;
	}
	*out = e;
	return ret;
}

/* ---- sinks -------------------------------------------------------------- */

/* write(2) or send(2) of everything, EPIPE instead of SIGPIPE on sockets. */
static int write_full(int fd, const void *buf, size_t len, struct error *err)
{
	const char *p = buf;
	while (len) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
		if (w < 0 && errno == ENOTSOCK)
			w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EPIPE)
			return error_set(err, STATUS_CANCELLED, "write: broken pipe");
		if (w < 0)
			return error_set(err, STATUS_INTERNAL, "write: %s", strerror(errno));
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int packcache_sink_write(struct packcache_sink *s, const void *buf, size_t len,
			 struct error *err)
{
	struct entry *e = s->e;
	int readers;

	if (!len)
		return 0;
	if (!e) {
		if (write_full(s->fd, buf, len, err) < 0)
			return -1;
		s->bytes += len;
		return 0;
	}
	pthread_mutex_lock(&e->mu);
	readers = e->readers;
	pthread_mutex_unlock(&e->mu);
	if (readers == 0)
		return error_set(err, STATUS_CANCELLED, "all readers gone");
	if (write_full(e->fd, buf, len, err) < 0)
		return -1;
	s->bytes += len;
	pthread_mutex_lock(&e->mu);
	e->written += len;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->mu);
	return 0;
}

uint64_t packcache_sink_bytes(const struct packcache_sink *s)
{
	return s->bytes;
}

/* ---- producer thread ---------------------------------------------------- */

struct job {
	struct packcache *c;
	struct entry *e;
	struct packcache_producer p;
};

/* Marks the end of production and wakes every reader. */
static void finish_entry(struct packcache *c, struct entry *e, int failed, struct error *perr)
{
	if (failed) {
		/* Out of the index first, so the next request regenerates. */
		pthread_mutex_lock(&c->mu);
		index_remove(c, e);
		pthread_mutex_unlock(&c->mu);
	}
	pthread_mutex_lock(&e->mu);
	if (failed) {
		e->failed = 1;
		if (!error_is_set(perr))
			error_set(perr, STATUS_INTERNAL, "producer failed");
		error_move(&e->ferr, perr);
	} else {
		e->done = 1;
	}
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->mu);
}

static void *producer_main(void *arg)
{
	struct job *j = arg;
	struct packcache *c = j->c;
	struct packcache_sink sink = {.e = j->e, .fd = -1, .bytes = 0};
	struct error perr = ERROR_INIT;
	int rc = j->p.run(j->p.arg, &sink, &perr);

	if (j->p.release)
		j->p.release(j->p.arg);
	finish_entry(c, j->e, rc < 0, &perr);
	error_release(&perr);
	pthread_mutex_lock(&c->mu);
	entry_unref(j->e);
	if (--c->producers == 0)
		pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->mu);
	free(j);
	return NULL;
}

/* ---- readers ------------------------------------------------------------ */

/* Copies [*off, end) of the entry file to out_fd with sendfile, falling back
 * to pread/write where sendfile cannot be used. */
static int copy_range(int in_fd, int out_fd, uint64_t *off, uint64_t end, struct error *err)
{
	char buf[65536];

	while (*off < end) {
		size_t want = end - *off > SENDFILE_CHUNK ? SENDFILE_CHUNK : (size_t)(end - *off);
		off_t o = (off_t)*off;
		ssize_t n = sendfile(out_fd, in_fd, &o, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EPIPE)
			return error_set(err, STATUS_CANCELLED, "write: broken pipe");
		if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
			ssize_t r = pread(in_fd, buf, want > sizeof(buf) ? sizeof(buf) : want,
					  (off_t)*off);
			if (r <= 0)
				return error_set(err, STATUS_INTERNAL, "read cache file: %s",
						 r < 0 ? strerror(errno) : "unexpected EOF");
			if (write_full(out_fd, buf, (size_t)r, err) < 0)
				return -1;
			*off += (uint64_t)r;
			continue;
		}
		if (n < 0)
			return error_set(err, STATUS_INTERNAL, "sendfile: %s", strerror(errno));
		if (n == 0)
			return error_set(err, STATUS_INTERNAL, "sendfile: unexpected EOF");
		*off += (uint64_t)n;
		metrics_add(m_sendfile, NULL, (double)n);
	}
	return 0;
}

/* Raises out_fd's send buffer to READER_SNDBUF; no-op for non-sockets. */
static void grow_sndbuf(int out_fd)
{
	int cur = 0, want = READER_SNDBUF;
	socklen_t len = sizeof(cur);

	if (getsockopt(out_fd, SOL_SOCKET, SO_SNDBUF, &cur, &len) < 0 || cur >= want)
		return;
	(void)setsockopt(out_fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
}

/* Tails e onto out_fd until the producer is done; then detaches. */
static int read_entry(struct packcache *c, struct entry *e, int out_fd, uint64_t *served,
		      struct error *err)
{
	uint64_t off = 0;
	int ret = -1;

	grow_sndbuf(out_fd);
	for (;;) {
		pthread_mutex_lock(&e->mu);
		while (off >= e->written && !e->done && !e->failed)
			pthread_cond_wait(&e->cond, &e->mu);
		if (e->failed) {
			error_set(err, e->ferr.code, "%s", e->ferr.message);
			pthread_mutex_unlock(&e->mu);
			goto out;
		}
		uint64_t avail = e->written;
		int done = e->done;
		pthread_mutex_unlock(&e->mu);
		if (off >= avail && done)
			break;
		if (copy_range(e->fd, out_fd, &off, avail, err) < 0)
			goto out;
	}
	ret = 0;
out:
	*served = off;
	pthread_mutex_lock(&e->mu);
	e->readers--;
	pthread_mutex_unlock(&e->mu);
	pthread_mutex_lock(&c->mu);
	entry_unref(e);
	pthread_mutex_unlock(&c->mu);
	return ret;
}

/* ---- public ------------------------------------------------------------- */

int packcache_fetch(struct packcache *c, const char *key, int out_fd,
		    const struct packcache_producer *p, struct packcache_result *res,
		    struct error *err)
{
	struct entry *e = NULL;
	struct job *j = NULL;
	int ret = -1, released = 0;

	memset(res, 0, sizeof(*res));
	if (!key || !*key || strlen(key) > MAX_KEY_LEN) {
		error_set(err, STATUS_INTERNAL, "streamcache: invalid key");
		goto out;
	}
	pthread_mutex_lock(&c->mu);
	int64_t seen = count_occurrence(c, key);
	e = index_get(c, key);
	if (e) {
		pthread_mutex_lock(&e->mu);
		int usable = !e->failed;
		if (usable)
			e->readers++;
		pthread_mutex_unlock(&e->mu);
		if (!usable)
			e = NULL;
	}
	if (e) {
		e->refs++;
		pthread_mutex_unlock(&c->mu);
		res->hit = 1;
		res->cached = 1;
		if (p->release)
			p->release(p->arg);
		released = 1;
		ret = read_entry(c, e, out_fd, &res->served_bytes, err);
		goto out;
	}
	if (seen <= c->min_occurrences) {
		/* Not popular (yet): straight through, nothing on disk. */
		pthread_mutex_unlock(&c->mu);
		struct packcache_sink sink = {.e = NULL, .fd = out_fd, .bytes = 0};
		ret = p->run(p->arg, &sink, err);
		res->served_bytes = res->generated_bytes = sink.bytes;
		goto out;
	}
	if (entry_create(c, key, &e, err) < 0 || !(j = malloc(sizeof(*j)))) {
		pthread_mutex_unlock(&c->mu);
		if (e) {
			e->refs = 1;
			unlink(e->path);
			entry_unref(e);
		}
		if (!error_is_set(err))
			error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	size_t h = hash_key(key);
	e->next = c->index[h];
	c->index[h] = e;
	e->in_index = 1;
	e->readers = 1;
	e->refs = 3; /* index, producer, this reader */
	c->n_entries++;
	c->producers++;
	publish_entries(c);
	pthread_mutex_unlock(&c->mu);

	j->c = c;
	j->e = e;
	j->p = *p;
	released = 1; /* the producer thread owns p from here */
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, producer_main, j) != 0) {
		struct error perr = ERROR_INIT;
		error_set(&perr, STATUS_INTERNAL, "streamcache: cannot start producer");
		if (p->release)
			p->release(p->arg);
		finish_entry(c, e, 1, &perr);
		error_release(&perr);
		pthread_mutex_lock(&c->mu);
		entry_unref(e);
		if (--c->producers == 0)
			pthread_cond_broadcast(&c->idle);
		pthread_mutex_unlock(&c->mu);
		free(j);
	}
	pthread_attr_destroy(&attr);
	res->cached = 1;
	ret = read_entry(c, e, out_fd, &res->served_bytes, err);
	res->generated_bytes = res->served_bytes;
out:
	if (!released && p->release)
		p->release(p->arg);
	return ret;
}

int packcache_run_direct(int out_fd, const struct packcache_producer *p, uint64_t *bytes,
			 struct error *err)
{
	struct packcache_sink sink = {.e = NULL, .fd = out_fd, .bytes = 0};
	int ret = p->run(p->arg, &sink, err);

	if (p->release)
		p->release(p->arg);
	*bytes = sink.bytes;
	return ret;
}

/* Removes files older than max_age and sums the rest; no lock needed. */
static void clean_files(struct packcache *c, int64_t max_age_ms)
{
	DIR *top = opendir(c->dir);
	struct dirent *d;
	double usage = 0;
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	int64_t cutoff = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000 - max_age_ms;
	const char *lv[] = {c->dir};

	if (!top)
		return;
	while ((d = readdir(top))) {
		if (d->d_name[0] == '.')
			continue;
		int sfd = openat(dirfd(top), d->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0)
			continue;
		DIR *sub = fdopendir(sfd);
		if (!sub) {
			close(sfd);
			continue;
		}
		struct dirent *f;
		while ((f = readdir(sub))) {
			struct stat st;
			if (f->d_name[0] == '.' ||
			    fstatat(sfd, f->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;
			int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
			if (mtime <= cutoff) {
				if (unlinkat(sfd, f->d_name, 0) == 0)
					metrics_add(m_removed, lv, 1);
			} else {
				usage += (double)st.st_size;
			}
		}
		closedir(sub);
	}
	closedir(top);
	metrics_set(m_usage, lv, usage);
}

void packcache_clean(struct packcache *c)
{
	int64_t now = now_ms();

	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < N_BUCKETS; i++) {
		struct entry *e = c->index[i], *next;
		for (; e; e = next) {
			next = e->next;
			if (now - e->created_ms >= c->max_age_ms)
				index_remove(c, e);
		}
	}
	pthread_mutex_unlock(&c->mu);
	clean_files(c, c->max_age_ms);
}

static void *cleaner_main(void *arg)
{
	struct packcache *c = arg;
	int64_t period = c->max_age_ms < CLEAN_PERIOD_MAX_MS ? c->max_age_ms : CLEAN_PERIOD_MAX_MS;

	if (period < 100)
		period = 100;
	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += period / 1000;
		ts.tv_nsec += (period % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->stop_cond, &c->mu, &ts);
		if (c->stop)
			break;
		pthread_mutex_unlock(&c->mu);
		packcache_clean(c);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int packcache_new(const struct packcache_options *o, struct packcache **out, struct error *err)
{
	struct packcache *c = calloc(1, sizeof(*c));
	unsigned char rnd[10];
	int ret = -1;

	*out = NULL;
	metrics_init();
	if (!c)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->idle, NULL);
	pthread_cond_init(&c->stop_cond, NULL);
	c->max_age_ms = o->max_age_ms > 0 ? o->max_age_ms : 5 * 60000;
	c->min_occurrences = o->min_occurrences;
	c->gen_start_ms = now_ms();
	c->dir = o->dir ? strdup(o->dir) : NULL;
	c->index = calloc(N_BUCKETS, sizeof(*c->index));
	if (!c->dir || !c->index || counters_init(&c->cur) < 0 || counters_init(&c->prev) < 0) {
		error_set(err, STATUS_INTERNAL, "streamcache: invalid options or out of memory");
		goto out;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		error_set(err, STATUS_INTERNAL, "streamcache: getrandom: %s", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(c->procid + 2 * i, 3, "%02x", rnd[i]);
	if (fsutil_mkdir_p(c->dir, 0700, err) < 0)
		goto out;
	{
		const char *lv[] = {c->dir};
		metrics_touch(m_removed, lv);
		metrics_touch(m_usage, lv);
		publish_entries(c);
	}
	if (o->start_cleaner) {
		if (pthread_create(&c->cleaner, NULL, cleaner_main, c) != 0) {
			error_set(err, STATUS_INTERNAL, "streamcache: cannot start cleaner");
			goto out;
		}
		c->cleaner_started = 1;
	}
	ret = 0;
out:
	if (ret < 0)
		packcache_free(c);
	else
		*out = c;
	return ret;
}

void packcache_free(struct packcache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_broadcast(&c->stop_cond);
	while (c->producers > 0)
		pthread_cond_wait(&c->idle, &c->mu);
	pthread_mutex_unlock(&c->mu);
	if (c->cleaner_started)
		pthread_join(c->cleaner, NULL);
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; c->index && i < N_BUCKETS; i++)
		while (c->index[i])
			index_remove(c, c->index[i]);
	pthread_mutex_unlock(&c->mu);
	counters_release(&c->cur);
	counters_release(&c->prev);
	free(c->index);
	free(c->dir);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->idle);
	pthread_cond_destroy(&c->stop_cond);
	free(c);
}

size_t packcache_entries(struct packcache *c)
{
	size_t n;
	pthread_mutex_lock(&c->mu);
	n = c->n_entries;
	pthread_mutex_unlock(&c->mu);
	return n;
}

const char *packcache_dir(const struct packcache *c)
{
	return c->dir;
}
