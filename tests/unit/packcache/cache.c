/*
 * The pack-objects cache core: keys below min_occurrences stream without a
 * file, readers tail an entry while its producer is still writing and all
 * get the same bytes from one producer run, a failing producer fails every
 * reader and the next request regenerates, a reader that goes away does not
 * stop the others, a producer without readers stops, eviction by age
 * removes entries and files. Also the limiter's queue and IP keys.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/fsutil.h"
#include "packcache/cache.h"
#include "packcache/limiter.h"

/* A producer the test steers: writes "head", waits for the gate, then
 * writes "tail" (or fails). */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int open;
	int runs;
	int fail;
	int sink_failed;
	size_t tail_repeat;
};

static int gate_run(void *arg, struct packcache_sink *sink, struct error *err)
{
	struct gate *g = arg;
	int fail;

	pthread_mutex_lock(&g->mu);
	g->runs++;
	pthread_mutex_unlock(&g->mu);
	if (packcache_sink_write(sink, "head-", 5, err) < 0)
		goto failed;
	pthread_mutex_lock(&g->mu);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	fail = g->fail;
	pthread_mutex_unlock(&g->mu);
	if (fail)
		return error_set(err, STATUS_ABORTED, "boom");
	for (size_t i = 0; i < (g->tail_repeat ? g->tail_repeat : 1); i++)
		if (packcache_sink_write(sink, "tail", 4, err) < 0)
			goto failed;
	return 0;
failed:
	pthread_mutex_lock(&g->mu);
	g->sink_failed = 1;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	return -1;
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = 1;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static void gate_init(struct gate *g, int open)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->open = open;
}

/* One request: fetch onto a socket drained by a second thread. */
struct req {
	struct packcache *c;
	const char *key;
	struct gate *g;
	int close_early; /* the client hangs up before reading anything */
	int rc;
	struct error err;
	struct packcache_result res;
	pthread_mutex_t mu;
	char out[1 << 16];
	size_t len;
	size_t total; /* every byte received, also beyond out */
	int sndbuf;   /* SO_SNDBUF of the fetch's socket once it returned */
	int fd;
	pthread_t t, drain;
};

static void *drain_main(void *arg)
{
	struct req *r = arg;
	char buf[4096];
	for (;;) {
		ssize_t n = read(r->fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		pthread_mutex_lock(&r->mu);
		r->total += (size_t)n;
		if (r->len + (size_t)n <= sizeof(r->out)) {
			memcpy(r->out + r->len, buf, (size_t)n);
			r->len += (size_t)n;
		}
		pthread_mutex_unlock(&r->mu);
	}
	close(r->fd);
	return NULL;
}

static void *req_main(void *arg)
{
	struct req *r = arg;
	int sv[2];
	struct packcache_producer p = {gate_run, NULL, r->g};

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	r->fd = sv[1];
	if (r->close_early) {
		close(sv[1]);
		r->fd = -1;
	} else {
		pthread_create(&r->drain, NULL, drain_main, r);
	}
	r->rc = packcache_fetch(r->c, r->key, sv[0], &p, &r->res, &r->err);
	socklen_t sl = sizeof(r->sndbuf);
	assert_int_equal(getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &r->sndbuf, &sl), 0);
	close(sv[0]);
	if (!r->close_early)
		pthread_join(r->drain, NULL);
	return NULL;
}

static struct req *req_start(struct packcache *c, const char *key, struct gate *g)
{
	struct req *r = calloc(1, sizeof(*r));
	r->c = c;
	r->key = key;
	r->g = g;
	pthread_mutex_init(&r->mu, NULL);
	pthread_create(&r->t, NULL, req_main, r);
	return r;
}

static void req_finish(struct req *r)
{
	pthread_join(r->t, NULL);
}

static void req_free(struct req *r)
{
	error_release(&r->err);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static size_t req_len(struct req *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = r->len;
	pthread_mutex_unlock(&r->mu);
	return n;
}

static void wait_len(struct req *r, size_t n)
{
	for (int i = 0; i < 5000 && req_len(r) < n; i++)
		usleep(1000);
	assert_true(req_len(r) >= n);
}

struct fixture {
	char dir[64];
	char cache_dir[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/packcache-unit-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->cache_dir, sizeof(f->cache_dir), "%s/cache", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	fsutil_remove_tree(f->dir, NULL);
	free(f);
	return 0;
}

static struct packcache *new_cache(struct fixture *f, int64_t min_occ, int64_t max_age_ms)
{
	struct packcache_options o = {f->cache_dir, max_age_ms, min_occ, 0};
	struct packcache *c = NULL;
	struct error err = ERROR_INIT;
	assert_int_equal(packcache_new(&o, &c, &err), 0);
	return c;
}

/* Regular files one level below the cache directory (the entry layout). */
static int count_files(const char *dir)
{
	DIR *top = opendir(dir);
	struct dirent *d;
	int n = 0;

	if (!top)
		return 0;
	while ((d = readdir(top))) {
		char sub[512];
		if (d->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, d->d_name);
		DIR *s = opendir(sub);
		struct dirent *e;
		while (s && (e = readdir(s)))
			if (e->d_name[0] != '.')
				n++;
		if (s)
			closedir(s);
	}
	closedir(top);
	return n;
}

static void test_min_occurrences(void **state)
{
	struct fixture *f = *state;
	struct packcache *c = new_cache(f, 1, 60000);
	struct gate g;
	gate_init(&g, 1);

	/* Seen once: streamed straight through, no file. */
	struct req *r = req_start(c, "k1", &g);
	req_finish(r);
	assert_int_equal(r->rc, 0);
	assert_int_equal(r->res.cached, 0);
	assert_int_equal(r->res.hit, 0);
	assert_int_equal(r->len, 9);
	assert_memory_equal(r->out, "head-tail", 9);
	assert_int_equal(r->res.served_bytes, 9);
	assert_int_equal(count_files(f->cache_dir), 0);
	assert_int_equal(packcache_entries(c), 0);
	req_free(r);

	/* Twice: an entry on disk. */
	r = req_start(c, "k1", &g);
	req_finish(r);
	assert_int_equal(r->rc, 0);
	assert_int_equal(r->res.cached, 1);
	assert_int_equal(r->res.hit, 0);
	assert_int_equal(r->res.generated_bytes, 9);
	assert_memory_equal(r->out, "head-tail", 9);
	req_free(r);
	assert_int_equal(count_files(f->cache_dir), 1);

	/* Then hits, without running the producer. */
	r = req_start(c, "k1", &g);
	req_finish(r);
	assert_int_equal(r->rc, 0);
	assert_int_equal(r->res.hit, 1);
	assert_int_equal(r->len, 9);
	assert_memory_equal(r->out, "head-tail", 9);
	req_free(r);
	assert_int_equal(g.runs, 2);

	/* Another key seen once: still nothing new on disk. */
	r = req_start(c, "k2", &g);
	req_finish(r);
	assert_int_equal(r->res.cached, 0);
	req_free(r);
	assert_int_equal(count_files(f->cache_dir), 1);
	packcache_free(c);
	assert_int_equal(count_files(f->cache_dir), 0);
}

/*
 * Requests served from an entry (the one creating it and hits) get a large
 * socket send buffer, so serving a big entry does not wake the reader every
 * ~150 KiB; a request streamed straight through keeps the default.
 */
static void test_entry_readers_get_a_large_send_buffer(void **state)
{
	struct fixture *f = *state;
	struct packcache *c = new_cache(f, 1, 60000);
	struct gate g;
	long wmem_max = 0, wmem_default = 0;
	FILE *fp = fopen("/proc/sys/net/core/wmem_max", "r");

	assert_non_null(fp);
	assert_int_equal(fscanf(fp, "%ld", &wmem_max), 1);
	fclose(fp);
	fp = fopen("/proc/sys/net/core/wmem_default", "r");
	assert_non_null(fp);
	assert_int_equal(fscanf(fp, "%ld", &wmem_default), 1);
	fclose(fp);
	if (wmem_default >= (4 << 20)) {
		packcache_free(c);
		skip(); /* sockets start with a buffer that large: nothing to raise */
	}
	/* setsockopt doubles the (capped) request; the default is not doubled */
	long want = 2 * (wmem_max < (4 << 20) ? wmem_max : (4 << 20));
	gate_init(&g, 1);
	for (int i = 0; i < 3; i++) {
		struct req *r = req_start(c, "k", &g);
		req_finish(r);
		assert_int_equal(r->rc, 0);
		assert_memory_equal(r->out, "head-tail", 9);
		if (i == 0)
			assert_true(r->sndbuf < want); /* streamed, no entry */
		else
			assert_true(r->sndbuf >= want);
		req_free(r);
	}
	packcache_free(c);
}

static void test_readers_tail_one_producer(void **state)
{
	struct fixture *f = *state;
	struct packcache *c = new_cache(f, 0, 60000);
	struct gate g;
	gate_init(&g, 0);
	g.tail_repeat = 2000;

	struct req *a = req_start(c, "k", &g);
	wait_len(a, 5); /* got "head-" while the producer waits at the gate */
	struct req *b[4];
	for (int i = 0; i < 4; i++)
		b[i] = req_start(c, "k", &g);
	for (int i = 0; i < 4; i++)
		wait_len(b[i], 5);
	assert_int_equal(packcache_entries(c), 1);
	gate_open(&g);
	req_finish(a);
	assert_int_equal(a->rc, 0);
	assert_int_equal(a->len, 5 + 4 * 2000);
	assert_int_equal(a->res.hit, 0);
	for (int i = 0; i < 4; i++) {
		req_finish(b[i]);
		assert_int_equal(b[i]->rc, 0);
		assert_int_equal(b[i]->res.hit, 1);
		assert_int_equal(b[i]->len, a->len);
		assert_memory_equal(b[i]->out, a->out, a->len);
		assert_int_equal(b[i]->res.served_bytes, a->len);
		req_free(b[i]);
	}
	assert_int_equal(g.runs, 1);
	req_free(a);
	packcache_free(c);
}

static void test_failure_reaches_every_reader(void **state)
{
	struct fixture *f = *state;
	struct packcache *c = new_cache(f, 0, 60000);
	struct gate g;
	gate_init(&g, 0);
	g.fail = 1;

	struct req *a = req_start(c, "k", &g);
	wait_len(a, 5);
	struct req *b = req_start(c, "k", &g);
	wait_len(b, 5);
	gate_open(&g);
	req_finish(a);
	req_finish(b);
	assert_int_equal(a->rc, -1);
	assert_int_equal(b->rc, -1);
	assert_int_equal(a->err.code, STATUS_ABORTED);
	assert_int_equal(b->err.code, STATUS_ABORTED);
	assert_string_equal(a->err.message, "boom");
	assert_string_equal(b->err.message, "boom");
	assert_int_equal(packcache_entries(c), 0);
	assert_int_equal(count_files(f->cache_dir), 0);
	req_free(a);
	req_free(b);

	/* The next request regenerates. */
	g.fail = 0;
	struct req *r = req_start(c, "k", &g);
	req_finish(r);
	assert_int_equal(r->rc, 0);
	assert_int_equal(r->res.hit, 0);
	assert_memory_equal(r->out, "head-tail", 9);
	assert_int_equal(g.runs, 2);
	req_free(r);
	packcache_free(c);
}

static void test_producer_survives_first_reader(void **state)
{
	struct fixture *f = *state;
	struct packcache *c = new_cache(f, 0, 60000);
	struct gate g;
	gate_init(&g, 0);
	g.tail_repeat = 50000; /* more than a socket buffer */

	struct req *a = calloc(1, sizeof(*a));
	a->c = c, a->key = "k", a->g = &g, a->close_early = 1;
	pthread_mutex_init(&a->mu, NULL);
	pthread_create(&a->t, NULL, req_main, a);
	struct req *b = req_start(c, "k", &g);
	wait_len(b, 5);
	gate_open(&g);
	req_finish(a);
	req_finish(b);
	assert_int_equal(a->rc, -1);
	assert_int_equal(a->err.code, STATUS_CANCELLED);
	assert_int_equal(b->rc, 0);
	assert_int_equal(b->total, 5 + 4 * 50000);
	assert_int_equal(b->res.served_bytes, 5 + 4 * 50000);
	assert_int_equal(g.runs, 1);
	assert_int_equal(g.sink_failed, 0);
	req_free(a);
	req_free(b);
	packcache_free(c);
}

static void test_producer_stops_without_readers(void **state)
{
	struct fixture *f = *state;
	struct packcache *c = new_cache(f, 0, 60000);
	struct gate g;
	gate_init(&g, 0);

	struct req *a = calloc(1, sizeof(*a));
	a->c = c, a->key = "k", a->g = &g, a->close_early = 1;
	pthread_mutex_init(&a->mu, NULL);
	pthread_create(&a->t, NULL, req_main, a);
	req_finish(a);
	assert_int_equal(a->rc, -1);
	gate_open(&g);
	packcache_free(c); /* waits for the producer */
	assert_int_equal(g.sink_failed, 1);
	req_free(a);
}

static void test_eviction(void **state)
{
	struct fixture *f = *state;
	struct packcache *c = new_cache(f, 0, 50);
	struct gate g;
	gate_init(&g, 1);

	struct req *r = req_start(c, "k", &g);
	req_finish(r);
	req_free(r);
	assert_int_equal(count_files(f->cache_dir), 1);
	assert_int_equal(packcache_entries(c), 1);
	packcache_clean(c); /* too young */
	assert_int_equal(count_files(f->cache_dir), 1);
	usleep(120 * 1000);
	packcache_clean(c);
	assert_int_equal(count_files(f->cache_dir), 0);
	assert_int_equal(packcache_entries(c), 0);

	/* A stray old file (a previous process) goes too. */
	char path[256];
	snprintf(path, sizeof(path), "%s/aa", f->cache_dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/aa/stray-1", f->cache_dir);
	FILE *fp = fopen(path, "w");
	fputs("x", fp);
	fclose(fp);
	usleep(120 * 1000);
	packcache_clean(c);
	assert_int_equal(count_files(f->cache_dir), 0);

	r = req_start(c, "k", &g);
	req_finish(r);
	assert_int_equal(r->res.hit, 0);
	assert_int_equal(g.runs, 2);
	req_free(r);
	packcache_free(c);
}

static void *hold_main(void *arg)
{
	struct packlimit *l = arg;
	struct packlimit_info info;
	struct error err = ERROR_INIT;
	if (packlimit_acquire(l, "10.0.0.1", &info, &err) == 0) {
		usleep(200 * 1000);
		packlimit_release(l, "10.0.0.1");
	}
	error_release(&err);
	return NULL;
}

static void test_limiter(void **state)
{
	(void)state;
	struct packlimit *l = packlimit_new(1, 1, 0);
	struct packlimit_info info;
	struct error err = ERROR_INIT;
	pthread_t t1, t2;

	assert_int_equal(packlimit_acquire(l, "10.0.0.1", &info, &err), 0);
	pthread_create(&t1, NULL, hold_main, l); /* queues */
	usleep(50 * 1000);
	assert_int_equal(packlimit_acquire(l, "10.0.0.1", &info, &err), -1);
	assert_int_equal(err.code, STATUS_RESOURCE_EXHAUSTED);
	assert_string_equal(err.message, "maximum queue size reached");
	assert_string_equal(info.dropped, "max_size");
	error_release(&err);
	/* Another key is not affected. */
	assert_int_equal(packlimit_acquire(l, "10.0.0.2", &info, &err), 0);
	packlimit_release(l, "10.0.0.2");
	packlimit_release(l, "10.0.0.1");
	pthread_join(t1, NULL);
	packlimit_free(l);

	l = packlimit_new(1, 0, 50);
	assert_int_equal(packlimit_acquire(l, "k", &info, &err), 0);
	assert_int_equal(packlimit_acquire(l, "k", &info, &err), -1);
	assert_string_equal(err.message, "maximum time in concurrency queue reached");
	assert_true(info.queue_ms >= 50);
	error_release(&err);
	packlimit_release(l, "k");
	pthread_create(&t2, NULL, hold_main, l);
	pthread_join(t2, NULL);
	packlimit_free(l);

	char key[64];
	assert_int_equal(packlimit_key_from_ip("127.0.0.1", key, sizeof(key)), 0);
	assert_int_equal(packlimit_key_from_ip("127.0.0.1:1234", key, sizeof(key)), 0);
	assert_int_equal(packlimit_key_from_ip("::1", key, sizeof(key)), 0);
	assert_int_equal(packlimit_key_from_ip("[::1]:22", key, sizeof(key)), 0);
	assert_int_equal(packlimit_key_from_ip("", key, sizeof(key)), 0);
	assert_int_equal(packlimit_key_from_ip("nonsense", key, sizeof(key)), 0);
	assert_int_equal(packlimit_key_from_ip("10.1.2.3:999", key, sizeof(key)), 1);
	assert_string_equal(key, "10.1.2.3");
	assert_int_equal(packlimit_key_from_ip("[2001:db8::1]:22", key, sizeof(key)), 1);
	assert_string_equal(key, "2001:db8::1");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_min_occurrences, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_readers_get_a_large_send_buffer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_readers_tail_one_producer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_reaches_every_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_producer_survives_first_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_producer_stops_without_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
		cmocka_unit_test(test_limiter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
