/*
 * The process-wide Prometheus registry. Each family owns a small hash table
 * of series keyed by their label values and guarded by the family's own
 * mutex, so concurrent RPCs only contend when they touch the same family.
 * Rendering copies the family list under the registry lock, sorts it, and
 * writes each family under its lock in the layout Go's client_golang uses.
 */
#include "base/metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

enum metric_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

struct series {
	struct series *next; /* hash chain */
	uint64_t hash;
	double value;        /* counter and gauge */
	double sum;          /* histogram */
	uint64_t count;      /* histogram */
	uint64_t *per_bucket; /* histogram: non-cumulative count per bucket */
	char **values;       /* n_labels strings, in declaration order */
};

struct metric_family {
	char *name;
	char *help;
	enum metric_kind kind;
	size_t n_labels;
	char **label_names;
	size_t *order; /* label indexes sorted by label name */
	double *buckets;
	size_t n_buckets;
	pthread_mutex_t lock;
	struct series **table;
	size_t table_size; /* power of two */
	size_t n_series;
	unsigned long gen; /* bumped when series are freed (metrics_ref) */
};

struct collector {
	void (*fn)(void *data);
	void *data;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric_family **families;
static size_t n_families, alloc_families;
static struct collector *collectors;
static size_t n_collectors;

const double metrics_default_latency_buckets[] = { 0.001, 0.005, 0.025, 0.1, 0.5, 1,
						   10,    30,    60,    300, 1500 };
const size_t metrics_default_latency_buckets_len =
	sizeof(metrics_default_latency_buckets) / sizeof(metrics_default_latency_buckets[0]);

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		abort();
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		abort();
	return p;
}

static uint64_t hash_values(const char *const *values, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = (const unsigned char *)(values[i] ? values[i] : "");
		size_t len = 0;
		for (; *p && len < METRICS_MAX_LABEL_VALUE; p++, len++) {
			h ^= *p;
			h *= 1099511628211ULL;
		}
		h ^= 0xff; /* separator so ("ab","") differs from ("a","b") */
		h *= 1099511628211ULL;
	}
	return h;
}

/* Compares a stored (already cut) value with a caller's value cut the same way. */
static int value_equal(const char *stored, const char *given)
{
	size_t len;

	if (!given)
		given = "";
	len = strnlen(given, METRICS_MAX_LABEL_VALUE);
	return strlen(stored) == len && !memcmp(stored, given, len);
}

static void series_free(struct series *s, size_t n_labels)
{
	if (!s)
		return;
	for (size_t i = 0; i < n_labels; i++)
		free(s->values[i]);
	free(s->values);
	free(s->per_bucket);
	free(s);
}

static void table_grow(struct metric_family *f)
{
	size_t size = f->table_size ? f->table_size * 2 : 16;
	struct series **table = xcalloc(size, sizeof(*table));

	for (size_t i = 0; i < f->table_size; i++) {
		struct series *s = f->table[i], *next;
		for (; s; s = next) {
			next = s->next;
			s->next = table[s->hash & (size - 1)];
			table[s->hash & (size - 1)] = s;
		}
	}
	free(f->table);
	f->table = table;
	f->table_size = size;
}

/* Finds or creates a series; the family lock is held. NULL past the cap. */
static struct series *series_get(struct metric_family *f, const char *const *values, int create)
{
	static const char *const no_values[1] = { "" };
	uint64_t h;
	struct series *s;

	if (!values) {
		if (f->n_labels)
			return NULL; /* caller bug: labelled family without values */
		values = no_values;
	}
	h = hash_values(values, f->n_labels);
	if (f->table_size) {
		for (s = f->table[h & (f->table_size - 1)]; s; s = s->next) {
			size_t i;
			if (s->hash != h)
				continue;
			for (i = 0; i < f->n_labels; i++)
				if (!value_equal(s->values[i], values[i]))
					break;
			if (i == f->n_labels)
				return s;
		}
	}
	if (!create || f->n_series >= METRICS_MAX_SERIES)
		return NULL;
	if (f->n_series + 1 > f->table_size * 3 / 4)
		table_grow(f);
	s = xcalloc(1, sizeof(*s));
	s->hash = h;
	s->values = xcalloc(f->n_labels, sizeof(char *));
	for (size_t i = 0; i < f->n_labels; i++)
		s->values[i] = strndup(values[i] ? values[i] : "", METRICS_MAX_LABEL_VALUE);
	for (size_t i = 0; i < f->n_labels; i++)
		if (!s->values[i])
			abort();
	if (f->kind == KIND_HISTOGRAM)
		s->per_bucket = xcalloc(f->n_buckets, sizeof(uint64_t));
	s->next = f->table[h & (f->table_size - 1)];
	f->table[h & (f->table_size - 1)] = s;
	f->n_series++;
	return s;
}

static struct metric_family *registry_find(const char *name)
{
	for (size_t i = 0; i < n_families; i++)
		if (!strcmp(families[i]->name, name))
			return families[i];
	return NULL;
}

static struct metric_family *family_new(enum metric_kind kind, const char *name, const char *help,
					const char *const *label_names, size_t n_labels,
					const double *buckets, size_t n_buckets)
{
	struct metric_family *f = NULL;

	if (!name || (n_labels && !label_names))
		return NULL;
	pthread_mutex_lock(&registry_lock);
	f = registry_find(name);
	if (f) {
		if (f->kind != kind || f->n_labels != n_labels) {
			log_msg(LOG_ERROR, "metrics: %s registered twice with different shapes", name);
			f = NULL;
		}
		goto out;
	}
	f = xcalloc(1, sizeof(*f));
	f->name = xstrdup(name);
	f->help = xstrdup(help);
	f->kind = kind;
	f->n_labels = n_labels;
	f->label_names = xcalloc(n_labels, sizeof(char *));
	f->order = xcalloc(n_labels, sizeof(size_t));
	for (size_t i = 0; i < n_labels; i++) {
		f->label_names[i] = xstrdup(label_names[i]);
		f->order[i] = i;
	}
	/* insertion sort of the label order by name: label counts are tiny */
	for (size_t i = 1; i < n_labels; i++) {
		size_t v = f->order[i], j = i;
		while (j > 0 && strcmp(f->label_names[f->order[j - 1]], f->label_names[v]) > 0) {
			f->order[j] = f->order[j - 1];
			j--;
		}
		f->order[j] = v;
	}
	if (kind == KIND_HISTOGRAM) {
		f->buckets = xcalloc(n_buckets, sizeof(double));
		if (n_buckets)
			memcpy(f->buckets, buckets, n_buckets * sizeof(double));
		f->n_buckets = n_buckets;
	}
	pthread_mutex_init(&f->lock, NULL);
	table_grow(f);
	if (!n_labels)
		series_get(f, NULL, 1);
	if (n_families == alloc_families) {
		size_t alloc = alloc_families ? alloc_families * 2 : 64;
		struct metric_family **p = realloc(families, alloc * sizeof(*p));
		if (!p)
			abort();
		families = p;
		alloc_families = alloc;
	}
	families[n_families++] = f;
out:
	pthread_mutex_unlock(&registry_lock);
	return f;
}

struct metric_family *metrics_counter(const char *name, const char *help,
				      const char *const *label_names, size_t n_labels)
{
	return family_new(KIND_COUNTER, name, help, label_names, n_labels, NULL, 0);
}

struct metric_family *metrics_gauge(const char *name, const char *help,
				    const char *const *label_names, size_t n_labels)
{
	return family_new(KIND_GAUGE, name, help, label_names, n_labels, NULL, 0);
}

struct metric_family *metrics_histogram(const char *name, const char *help,
					const char *const *label_names, size_t n_labels,
					const double *buckets, size_t n_buckets)
{
	return family_new(KIND_HISTOGRAM, name, help, label_names, n_labels, buckets,
			  buckets ? n_buckets : 0);
}

void metrics_add(struct metric_family *f, const char *const *label_values, double v)
{
	struct series *s;

	if (!f || f->kind == KIND_HISTOGRAM || (f->kind == KIND_COUNTER && !(v >= 0)))
		return;
	pthread_mutex_lock(&f->lock);
	s = series_get(f, label_values, 1);
	if (s)
		s->value += v;
	pthread_mutex_unlock(&f->lock);
}

void metrics_set(struct metric_family *f, const char *const *label_values, double v)
{
	struct series *s;

	if (!f || f->kind == KIND_HISTOGRAM)
		return;
	pthread_mutex_lock(&f->lock);
	s = series_get(f, label_values, 1);
	if (s)
		s->value = v;
	pthread_mutex_unlock(&f->lock);
}

/* One observation into s; the family lock is held. */
static void observe_locked(struct metric_family *f, struct series *s, double v)
{
	size_t i = 0;

	while (i < f->n_buckets && !(v <= f->buckets[i]))
		i++;
	if (i < f->n_buckets)
		s->per_bucket[i]++;
	s->count++;
	s->sum += v;
}

void metrics_observe(struct metric_family *f, const char *const *label_values, double v)
{
	struct series *s;

	if (!f || f->kind != KIND_HISTOGRAM)
		return;
	pthread_mutex_lock(&f->lock);
	s = series_get(f, label_values, 1);
	if (s)
		observe_locked(f, s, v);
	pthread_mutex_unlock(&f->lock);
}

/* The series behind ref, found again when unknown or stale; lock held. */
static struct series *ref_series(struct metric_family *f, struct metrics_ref *ref,
				 const char *const *label_values)
{
	if (!ref->series || ref->gen != f->gen) {
		ref->series = series_get(f, label_values, 1);
		ref->gen = f->gen;
	}
	return ref->series;
}

void metrics_add_ref(struct metric_family *f, struct metrics_ref *ref,
		     const char *const *label_values, double v)
{
	struct series *s;

	if (!f || f->kind == KIND_HISTOGRAM || (f->kind == KIND_COUNTER && !(v >= 0)))
		return;
	pthread_mutex_lock(&f->lock);
	s = ref_series(f, ref, label_values);
	if (s)
		s->value += v;
	pthread_mutex_unlock(&f->lock);
}

void metrics_observe_ref(struct metric_family *f, struct metrics_ref *ref,
			 const char *const *label_values, double v)
{
	struct series *s;

	if (!f || f->kind != KIND_HISTOGRAM)
		return;
	pthread_mutex_lock(&f->lock);
	s = ref_series(f, ref, label_values);
	if (s)
		observe_locked(f, s, v);
	pthread_mutex_unlock(&f->lock);
}

void metrics_touch(struct metric_family *f, const char *const *label_values)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	series_get(f, label_values, 1);
	pthread_mutex_unlock(&f->lock);
}

double metrics_get(struct metric_family *f, const char *const *label_values)
{
	struct series *s;
	double v = 0;

	if (!f)
		return 0;
	pthread_mutex_lock(&f->lock);
	s = series_get(f, label_values, 0);
	if (s)
		v = f->kind == KIND_HISTOGRAM ? (double)s->count : s->value;
	pthread_mutex_unlock(&f->lock);
	return v;
}

void metrics_histogram_set_buckets(struct metric_family *f, const double *buckets,
				   size_t n_buckets)
{
	double *copy;

	if (!f || f->kind != KIND_HISTOGRAM)
		return;
	if (!buckets)
		n_buckets = 0;
	copy = xcalloc(n_buckets, sizeof(double));
	if (n_buckets)
		memcpy(copy, buckets, n_buckets * sizeof(double));
	pthread_mutex_lock(&f->lock);
	free(f->buckets);
	f->buckets = copy;
	f->n_buckets = n_buckets;
	for (size_t i = 0; i < f->table_size; i++) {
		for (struct series *s = f->table[i]; s; s = s->next) {
			free(s->per_bucket);
			s->per_bucket = xcalloc(n_buckets, sizeof(uint64_t));
			s->count = 0;
			s->sum = 0;
		}
	}
	pthread_mutex_unlock(&f->lock);
}

void metrics_register_collector(void (*fn)(void *data), void *data)
{
	struct collector *p;

	if (!fn)
		return;
	pthread_mutex_lock(&registry_lock);
	p = realloc(collectors, (n_collectors + 1) * sizeof(*p));
	if (!p)
		abort();
	collectors = p;
	collectors[n_collectors].fn = fn;
	collectors[n_collectors].data = data;
	n_collectors++;
	pthread_mutex_unlock(&registry_lock);
}

void metrics_reset(void)
{
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < n_families; i++) {
		struct metric_family *f = families[i];
		pthread_mutex_lock(&f->lock);
		for (size_t j = 0; j < f->table_size; j++) {
			struct series *s = f->table[j], *next;
			for (; s; s = next) {
				next = s->next;
				series_free(s, f->n_labels);
			}
			f->table[j] = NULL;
		}
		f->n_series = 0;
		f->gen++;
		if (!f->n_labels)
			series_get(f, NULL, 1);
		pthread_mutex_unlock(&f->lock);
	}
	pthread_mutex_unlock(&registry_lock);
}

/* --- number formatting ------------------------------------------------------ */

/*
 * Shortest decimal digits that read back as v (v finite and > 0): fills
 * digits (no dot, no trailing zeros) and returns the decimal exponent of
 * the first digit.
 */
static int shortest_digits(double v, char *digits, size_t n)
{
	char buf[64];
	int exp10 = 0;

	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	{
		size_t len = 0;
		char *e = strchr(buf, 'e');
		for (char *p = buf; p < e && len + 1 < n; p++)
			if (*p >= '0' && *p <= '9')
				digits[len++] = *p;
		while (len > 1 && digits[len - 1] == '0')
			len--;
		digits[len] = '\0';
		exp10 = atoi(e + 1);
	}
	return exp10;
}

void metrics_format_float(double v, char *out, size_t n)
{
	char digits[32];
	struct strbuf sb;
	int exp10, nd;

	if (!n)
		return;
	if (isnan(v)) {
		snprintf(out, n, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, n, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) {
		snprintf(out, n, "0"); /* -0 too, like client_golang */
		return;
	}
	strbuf_init(&sb, 64);
	if (v < 0) {
		strbuf_addch(&sb, '-');
		v = -v;
	}
	exp10 = shortest_digits(v, digits, sizeof(digits));
	nd = (int)strlen(digits);
	/* Go's shortest 'g' switches to %e below 1e-4 and from 1e6 on */
	if (exp10 < -4 || exp10 >= 6) {
		strbuf_addch(&sb, digits[0]);
		if (nd > 1) {
			strbuf_addch(&sb, '.');
			strbuf_add(&sb, digits + 1, (size_t)nd - 1);
		}
		strbuf_addf(&sb, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
	} else if (exp10 < 0) {
		strbuf_adds(&sb, "0.");
		for (int i = -1; i > exp10; i--)
			strbuf_addch(&sb, '0');
		strbuf_adds(&sb, digits);
	} else {
		int dp = exp10 + 1; /* digits before the point */
		for (int i = 0; i < dp; i++)
			strbuf_addch(&sb, i < nd ? digits[i] : '0');
		if (nd > dp) {
			strbuf_addch(&sb, '.');
			strbuf_adds(&sb, digits + dp);
		}
	}
	snprintf(out, n, "%s", sb.buf ? sb.buf : "");
	strbuf_release(&sb);
}

/* --- rendering -------------------------------------------------------------- */

static void add_escaped(struct strbuf *out, const char *s, int quotes)
{
	for (; *s; s++) {
		if (*s == '\\')
			strbuf_adds(out, "\\\\");
		else if (*s == '\n')
			strbuf_adds(out, "\\n");
		else if (quotes && *s == '"')
			strbuf_adds(out, "\\\"");
		else
			strbuf_addch(out, *s);
	}
}

static void add_float(struct strbuf *out, double v)
{
	char buf[48];

	metrics_format_float(v, buf, sizeof(buf));
	strbuf_adds(out, buf);
}

/* name{labels[,le="x"]} value\n */
static void add_sample(struct strbuf *out, const struct metric_family *f, const char *suffix,
		       const struct series *s, const double *le, double value)
{
	char sep = '{';

	strbuf_adds(out, f->name);
	strbuf_adds(out, suffix);
	for (size_t i = 0; i < f->n_labels; i++) {
		size_t k = f->order[i];
		strbuf_addch(out, sep);
		strbuf_adds(out, f->label_names[k]);
		strbuf_adds(out, "=\"");
		add_escaped(out, s->values[k], 1);
		strbuf_addch(out, '"');
		sep = ',';
	}
	if (le) {
		strbuf_addch(out, sep);
		strbuf_adds(out, "le=\"");
		add_float(out, *le);
		strbuf_addch(out, '"');
		sep = ',';
	}
	if (sep == ',')
		strbuf_addch(out, '}');
	strbuf_addch(out, ' ');
	add_float(out, value);
	strbuf_addch(out, '\n');
}

static const struct metric_family *sort_family; /* qsort has no context argument */

static int cmp_series(const void *a, const void *b)
{
	const struct series *x = *(const struct series *const *)a;
	const struct series *y = *(const struct series *const *)b;

	for (size_t i = 0; i < sort_family->n_labels; i++) {
		size_t k = sort_family->order[i];
		int c = strcmp(x->values[k], y->values[k]);
		if (c)
			return c;
	}
	return 0;
}

static int cmp_family(const void *a, const void *b)
{
	const struct metric_family *x = *(const struct metric_family *const *)a;
	const struct metric_family *y = *(const struct metric_family *const *)b;
	return strcmp(x->name, y->name);
}

static pthread_mutex_t render_lock = PTHREAD_MUTEX_INITIALIZER;

static void render_family(struct strbuf *out, struct metric_family *f)
{
	static const char *const type_names[] = { "counter", "gauge", "histogram" };
	struct series **list = NULL;
	size_t n = 0;

	pthread_mutex_lock(&f->lock);
	if (!f->n_series)
		goto out;
	list = xcalloc(f->n_series, sizeof(*list));
	for (size_t i = 0; i < f->table_size; i++)
		for (struct series *s = f->table[i]; s; s = s->next)
			list[n++] = s;
	sort_family = f;
	qsort(list, n, sizeof(*list), cmp_series);
	strbuf_addf(out, "# HELP %s ", f->name);
	add_escaped(out, f->help, 0);
	strbuf_addf(out, "\n# TYPE %s %s\n", f->name, type_names[f->kind]);
	for (size_t i = 0; i < n; i++) {
		const struct series *s = list[i];
		if (f->kind != KIND_HISTOGRAM) {
			add_sample(out, f, "", s, NULL, s->value);
			continue;
		}
		uint64_t cumulative = 0;
		double inf = INFINITY;
		for (size_t b = 0; b < f->n_buckets; b++) {
			cumulative += s->per_bucket[b];
			add_sample(out, f, "_bucket", s, &f->buckets[b], (double)cumulative);
		}
		add_sample(out, f, "_bucket", s, &inf, (double)s->count);
		add_sample(out, f, "_sum", s, NULL, s->sum);
		add_sample(out, f, "_count", s, NULL, (double)s->count);
	}
out:
	pthread_mutex_unlock(&f->lock);
	free(list);
}

int metrics_render(struct strbuf *out)
{
	struct metric_family **copy = NULL;
	struct collector *cols = NULL;
	struct strbuf tmp = STRBUF_INIT;
	size_t n, nc;
	int ret = 0;

	pthread_mutex_lock(&registry_lock);
	nc = n_collectors;
	cols = xcalloc(nc, sizeof(*cols));
	if (nc)
		memcpy(cols, collectors, nc * sizeof(*cols));
	pthread_mutex_unlock(&registry_lock);
	for (size_t i = 0; i < nc; i++)
		cols[i].fn(cols[i].data);

	pthread_mutex_lock(&registry_lock);
	n = n_families;
	copy = xcalloc(n, sizeof(*copy));
	if (n)
		memcpy(copy, families, n * sizeof(*copy));
	pthread_mutex_unlock(&registry_lock);
	qsort(copy, n, sizeof(*copy), cmp_family);

	/* one render at a time: sort_family is shared with the qsort callback */
	pthread_mutex_lock(&render_lock);
	for (size_t i = 0; i < n; i++)
		render_family(&tmp, copy[i]);
	pthread_mutex_unlock(&render_lock);
	/* built aside so that hitting out's cap leaves out unchanged */
	if (tmp.len && strbuf_add(out, tmp.buf, tmp.len) < 0)
		ret = -1;
	strbuf_release(&tmp);
	free(copy);
	free(cols);
	return ret;
}

/* --- process metrics ---------------------------------------------------------- */

static struct metric_family *proc_cpu, *proc_open_fds, *proc_max_fds, *proc_vsize,
	*proc_vsize_max, *proc_rss, *proc_start;

/* Reads the whole of a small /proc file into buf; returns its length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");
	size_t len;

	if (!f)
		return -1;
	len = fread(buf, 1, n - 1, f);
	fclose(f);
	buf[len] = '\0';
	return (ssize_t)len;
}

static void collect_process(void *data)
{
	char buf[4096];
	struct rlimit rl;
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	DIR *d;

	(void)data;
	if (read_small("/proc/self/stat", buf, sizeof(buf)) > 0) {
		/* fields after the parenthesised command name, which may hold spaces */
		char *p = strrchr(buf, ')');
		unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
		long long rss = 0;
		if (p && sscanf(p + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d "
				"%*d %*d %*d %llu %llu %lld",
				&utime, &stime, &start, &vsize, &rss) == 5 &&
		    ticks > 0) {
			char sbuf[8192];
			metrics_set(proc_cpu, NULL, (double)(utime + stime) / (double)ticks);
			metrics_set(proc_vsize, NULL, (double)vsize);
			metrics_set(proc_rss, NULL, (double)rss * (double)page);
			if (read_small("/proc/stat", sbuf, sizeof(sbuf)) > 0) {
				char *bt = strstr(sbuf, "\nbtime ");
				if (bt)
					metrics_set(proc_start, NULL,
						    strtod(bt + 7, NULL) +
							    (double)start / (double)ticks);
			}
		}
	}
	d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *de;
		double n = 0;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				n++;
		closedir(d);
		metrics_set(proc_open_fds, NULL, n - 1); /* not the directory's own fd */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		metrics_set(proc_max_fds, NULL,
			    rl.rlim_cur == RLIM_INFINITY ? 18446744073709551615.0
							  : (double)rl.rlim_cur);
	if (getrlimit(RLIMIT_AS, &rl) == 0)
		metrics_set(proc_vsize_max, NULL,
			    rl.rlim_cur == RLIM_INFINITY ? 18446744073709551615.0
							  : (double)rl.rlim_cur);
}

static void process_families_init(void)
{
	proc_cpu = metrics_counter("process_cpu_seconds_total",
				   "Total user and system CPU time spent in seconds.", NULL, 0);
	proc_open_fds = metrics_gauge("process_open_fds", "Number of open file descriptors.",
				      NULL, 0);
	proc_max_fds = metrics_gauge("process_max_fds", "Maximum number of open file descriptors.",
				     NULL, 0);
	proc_vsize = metrics_gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
				   NULL, 0);
	proc_vsize_max = metrics_gauge("process_virtual_memory_max_bytes",
				       "Maximum amount of virtual memory available in bytes.",
				       NULL, 0);
	proc_rss = metrics_gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
				 NULL, 0);
	proc_start = metrics_gauge("process_start_time_seconds",
				   "Start time of the process since unix epoch in seconds.", NULL,
				   0);
	metrics_register_collector(collect_process, NULL);
}

void metrics_register_process_collector(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, process_families_init);
}
