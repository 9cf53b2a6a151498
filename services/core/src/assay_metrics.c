/*
 * Metrics registry: families of counters, gauges and histograms kept in creation order under
 * a mutex (taken only to create and to render), values in C11 atomics so the batch loop
 * updates them without locking while the HTTP thread renders Prometheus text format 0.0.4.
 * Also the liveness (heartbeat) and readiness state behind /healthz and /readyz.
 */
#include "assay_metrics.h"
#include "assay_err.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

/* One labelled time series of a counter or gauge. For a gauge, v holds the double's bits. */
struct series {
	struct series *next;
	char *labels; /* "" for none */
	_Atomic uint64_t v;
};

struct assay_counter {
	struct series s; /* first member: a series is its counter */
};

struct assay_gauge {
	struct series s;
};

struct assay_histogram {
	double *bounds;
	size_t n;
	_Atomic uint64_t *buckets; /* n + 1, not cumulative; the last is +Inf */
	_Atomic uint64_t sum_bits; /* double */
};

struct family {
	struct family *next;
	char *name;
	char *help; /* may be NULL */
	enum kind kind;
	struct series *first, *last;
	struct assay_histogram *hist;
};

struct assay_metrics {
	pthread_mutex_t lock; /* guards the family and series lists, not the values */
	struct family *first, *last;
	char *svc;
	_Atomic bool ready;
	_Atomic int64_t heartbeat_ms;
	char problem[512]; /* "" for none; guarded by lock */
	struct assay_gauge *ready_gauge;
	struct assay_gauge *heartbeat_age;
};

static uint64_t double_bits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static double bits_double(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

static void atomic_add_double(_Atomic uint64_t *bits, double delta)
{
	uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(bits, &old,
	                                              double_bits(bits_double(old) + delta),
	                                              memory_order_relaxed, memory_order_relaxed))
		;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool valid_name(const char *name)
{
	const char *p;

	if (name == NULL || *name == '\0' || (*name >= '0' && *name <= '9'))
		return false;
	for (p = name; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == ':'))
			return false;
	}
	return true;
}

/* name="value"(,name="value")* with only \\ \" \n escapes in values, or empty. */
static bool valid_labels(const char *p)
{
	if (*p == '\0')
		return true;
	for (;;) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
			return false;
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		       (*p >= '0' && *p <= '9') || *p == '_')
			p++;
		if (*p++ != '=' || *p++ != '"')
			return false;
		while (*p != '"') {
			if (*p == '\0' || *p == '\n')
				return false;
			if (*p == '\\') {
				p++;
				if (*p != '\\' && *p != '"' && *p != 'n')
					return false;
			}
			p++;
		}
		p++;
		if (*p == '\0')
			return true;
		if (*p++ != ',')
			return false;
	}
}

size_t assay_metrics_escape_label(char *out, size_t size, const char *value)
{
	size_t need = 0;
	const char *rep;
	char one[2] = {0, 0};

	for (; value != NULL && *value != '\0'; value++) {
		if (*value == '\\')
			rep = "\\\\";
		else if (*value == '"')
			rep = "\\\"";
		else if (*value == '\n')
			rep = "\\n";
		else {
			one[0] = *value;
			rep = one;
		}
		for (; *rep != '\0'; rep++, need++) {
			if (size > 0 && need < size - 1)
				out[need] = *rep;
		}
	}
	if (size > 0)
		out[need < size - 1 ? need : size - 1] = '\0';
	return need;
}

static void family_free(struct family *f)
{
	struct series *s, *next;

	for (s = f->first; s != NULL; s = next) {
		next = s->next;
		free(s->labels);
		free(s); /* allocated as its counter or gauge, which starts with it */
	}
	if (f->hist != NULL) {
		free(f->hist->bounds);
		free((void *)f->hist->buckets);
		free(f->hist);
	}
	free(f->name);
	free(f->help);
	free(f);
}

/* Finds the family name, or creates it (lock held). *kind_clash is set when it exists with
 * another kind. */
static struct family *family_get(struct assay_metrics *m, const char *name, const char *help,
                                 enum kind kind, bool *kind_clash)
{
	struct family *f;

	*kind_clash = false;
	for (f = m->first; f != NULL; f = f->next) {
		if (strcmp(f->name, name) == 0) {
			*kind_clash = f->kind != kind;
			return *kind_clash ? NULL : f;
		}
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	f->kind = kind;
	f->name = strdup(name);
	f->help = help != NULL ? strdup(help) : NULL;
	if (f->name == NULL || (help != NULL && f->help == NULL)) {
		family_free(f);
		return NULL;
	}
	if (m->last != NULL)
		m->last->next = f;
	else
		m->first = f;
	m->last = f;
	return f;
}

/* Returns the series of a counter or gauge, creating family and series as needed. */
static struct series *series_get(struct assay_metrics *m, const char *name, const char *help,
                                 const char *labels, enum kind kind)
{
	struct family *f;
	struct series *s = NULL;
	bool clash;

	if (m == NULL || !valid_name(name))
		return NULL;
	if (labels == NULL)
		labels = "";
	if (!valid_labels(labels))
		return NULL;
	pthread_mutex_lock(&m->lock);
	f = family_get(m, name, help, kind, &clash);
	if (f == NULL)
		goto out;
	for (s = f->first; s != NULL; s = s->next) {
		if (strcmp(s->labels, labels) == 0)
			goto out;
	}
	/* both containers are a bare struct series; allocate the larger to be safe */
	s = calloc(1, sizeof(struct assay_counter) > sizeof(struct assay_gauge)
	                      ? sizeof(struct assay_counter)
	                      : sizeof(struct assay_gauge));
	if (s == NULL)
		goto out;
	s->labels = strdup(labels);
	if (s->labels == NULL) {
		free(s);
		s = NULL;
		goto out;
	}
	atomic_init(&s->v, kind == KIND_GAUGE ? double_bits(0.0) : 0);
	/* publish fully built: render walks the list under the same lock */
	if (f->last != NULL)
		f->last->next = s;
	else
		f->first = s;
	f->last = s;
out:
	pthread_mutex_unlock(&m->lock);
	return s;
}

struct assay_counter *assay_metrics_counter(struct assay_metrics *m, const char *name,
                                            const char *help, const char *labels)
{
	size_t len = name != NULL ? strlen(name) : 0;

	if (len <= strlen("_total") || strcmp(name + len - strlen("_total"), "_total") != 0)
		return NULL;
	return (struct assay_counter *)series_get(m, name, help, labels, KIND_COUNTER);
}

void assay_counter_add(struct assay_counter *c, uint64_t n)
{
	if (c != NULL)
		atomic_fetch_add_explicit(&c->s.v, n, memory_order_relaxed);
}

uint64_t assay_counter_value(const struct assay_counter *c)
{
	return c == NULL ? 0 : atomic_load_explicit(&c->s.v, memory_order_relaxed);
}

struct assay_gauge *assay_metrics_gauge(struct assay_metrics *m, const char *name, const char *help,
                                        const char *labels)
{
	return (struct assay_gauge *)series_get(m, name, help, labels, KIND_GAUGE);
}

void assay_gauge_set(struct assay_gauge *g, double v)
{
	if (g != NULL)
		atomic_store_explicit(&g->s.v, double_bits(v), memory_order_relaxed);
}

void assay_gauge_add(struct assay_gauge *g, double delta)
{
	if (g != NULL)
		atomic_add_double(&g->s.v, delta);
}

double assay_gauge_value(const struct assay_gauge *g)
{
	return g == NULL ? 0.0 : bits_double(atomic_load_explicit(&g->s.v, memory_order_relaxed));
}

struct assay_histogram *assay_metrics_histogram(struct assay_metrics *m, const char *name,
                                                const char *help, const double *bounds, size_t n)
{
	struct assay_histogram *h = NULL;
	struct family *f;
	bool clash;
	size_t i;

	if (m == NULL || !valid_name(name) || (bounds == NULL && n > 0))
		return NULL;
	for (i = 0; i < n; i++) {
		if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
			return NULL;
	}
	pthread_mutex_lock(&m->lock);
	f = family_get(m, name, help, KIND_HISTOGRAM, &clash);
	if (f == NULL)
		goto out;
	if (f->hist != NULL) {
		if (f->hist->n == n &&
		    (n == 0 || memcmp(f->hist->bounds, bounds, n * sizeof(*bounds)) == 0))
			h = f->hist;
		goto out;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		goto out;
	h->n = n;
	h->bounds = malloc((n > 0 ? n : 1) * sizeof(*h->bounds));
	h->buckets = calloc(n + 1, sizeof(*h->buckets));
	if (h->bounds == NULL || h->buckets == NULL) {
		free(h->bounds);
		free((void *)h->buckets);
		free(h);
		h = NULL;
		goto out;
	}
	if (n > 0)
		memcpy(h->bounds, bounds, n * sizeof(*bounds));
	for (i = 0; i <= n; i++)
		atomic_init(&h->buckets[i], 0);
	atomic_init(&h->sum_bits, double_bits(0.0));
	f->hist = h;
out:
	pthread_mutex_unlock(&m->lock);
	return h;
}

void assay_histogram_observe(struct assay_histogram *h, double v)
{
	size_t i;

	if (h == NULL || isnan(v))
		return;
	for (i = 0; i < h->n && v > h->bounds[i]; i++)
		;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_add_double(&h->sum_bits, v);
}

uint64_t assay_histogram_count(const struct assay_histogram *h)
{
	uint64_t total = 0;
	size_t i;

	for (i = 0; h != NULL && i <= h->n; i++)
		total += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
	return total;
}

/* Growing output buffer for render; failed is sticky. */
struct out {
	char *buf;
	size_t len;
	size_t cap;
	bool failed;
};

__attribute__((format(printf, 2, 3))) static void outf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;
	size_t want;
	char *nbuf;

	if (o->failed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		o->failed = true;
		return;
	}
	if ((size_t)n < o->cap - o->len) {
		o->len += (size_t)n;
		return;
	}
	want = o->cap * 2;
	while (want <= o->len + (size_t)n)
		want *= 2;
	nbuf = realloc(o->buf, want);
	if (nbuf == NULL) {
		o->failed = true;
		return;
	}
	o->buf = nbuf;
	o->cap = want;
	va_start(ap, fmt);
	vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	o->len += (size_t)n;
}

/* Shortest of %.15g / %.17g that reads back exactly; Prometheus spellings for specials. */
static void fmt_double(char *buf, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(buf, size, "NaN");
	} else if (isinf(v)) {
		snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
	} else {
		snprintf(buf, size, "%.15g", v);
		if (strtod(buf, NULL) != v)
			snprintf(buf, size, "%.17g", v);
	}
}

static void out_help(struct out *o, const struct family *f)
{
	const char *p;

	if (f->help == NULL)
		return;
	outf(o, "# HELP %s ", f->name);
	for (p = f->help; *p != '\0'; p++) {
		if (*p == '\\')
			outf(o, "\\\\");
		else if (*p == '\n')
			outf(o, "\\n");
		else
			outf(o, "%c", *p);
	}
	outf(o, "\n");
}

static void render_family(struct out *o, const struct family *f)
{
	static const char *const kind_names[] = {"counter", "gauge", "histogram"};
	const struct series *s;
	const struct assay_histogram *h = f->hist;
	uint64_t cum = 0;
	char num[40];
	size_t i;

	if (f->kind == KIND_HISTOGRAM && h == NULL)
		return;
	if (f->kind != KIND_HISTOGRAM && f->first == NULL)
		return;
	out_help(o, f);
	outf(o, "# TYPE %s %s\n", f->name, kind_names[f->kind]);
	if (f->kind == KIND_HISTOGRAM) {
		for (i = 0; i <= h->n; i++) {
			cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
			if (i < h->n)
				fmt_double(num, sizeof(num), h->bounds[i]);
			else
				snprintf(num, sizeof(num), "+Inf");
			outf(o, "%s_bucket{le=\"%s\"} %llu\n", f->name, num,
			     (unsigned long long)cum);
		}
		fmt_double(num, sizeof(num),
		           bits_double(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
		outf(o, "%s_sum %s\n", f->name, num);
		/* the count is the +Inf bucket, so the two always agree in one scrape */
		outf(o, "%s_count %llu\n", f->name, (unsigned long long)cum);
		return;
	}
	for (s = f->first; s != NULL; s = s->next) {
		uint64_t v = atomic_load_explicit(&s->v, memory_order_relaxed);

		if (f->kind == KIND_COUNTER)
			snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
		else
			fmt_double(num, sizeof(num), bits_double(v));
		if (s->labels[0] != '\0')
			outf(o, "%s{%s} %s\n", f->name, s->labels, num);
		else
			outf(o, "%s %s\n", f->name, num);
	}
}

int assay_metrics_render(struct assay_metrics *m, char **out, size_t *len)
{
	struct out o = {NULL, 0, 4096, false};
	const struct family *f;
	int64_t age;

	if (out != NULL)
		*out = NULL;
	if (m == NULL || out == NULL || len == NULL)
		return ASSAY_ERR_FATAL;
	o.buf = malloc(o.cap);
	if (o.buf == NULL)
		return ASSAY_ERR_FATAL;
	o.buf[0] = '\0';
	age = now_ms() - atomic_load_explicit(&m->heartbeat_ms, memory_order_relaxed);
	assay_gauge_set(m->heartbeat_age, (double)(age > 0 ? age : 0) / 1000.0);
	pthread_mutex_lock(&m->lock);
	for (f = m->first; f != NULL; f = f->next)
		render_family(&o, f);
	pthread_mutex_unlock(&m->lock);
	if (o.failed) {
		free(o.buf);
		return ASSAY_ERR_FATAL;
	}
	*out = o.buf;
	*len = o.len;
	return 0;
}

struct assay_metrics *assay_metrics_new(const char *svc)
{
	struct assay_metrics *m;
	char escaped[256], labels[sizeof(escaped) + 8];

	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return NULL;
	}
	atomic_init(&m->ready, false);
	atomic_init(&m->heartbeat_ms, now_ms());
	m->svc = strdup(svc != NULL ? svc : "");
	if (m->svc == NULL)
		goto fail;
	if (assay_metrics_escape_label(escaped, sizeof(escaped), m->svc) >= sizeof(escaped))
		goto fail; /* absurdly long service name */
	snprintf(labels, sizeof(labels), "svc=\"%s\"", escaped);
	assay_gauge_set(assay_metrics_gauge(m, "assay_service_info",
	                                    "service name of this process; always 1", labels),
	                1.0);
	m->ready_gauge = assay_metrics_gauge(
	        m, "assay_ready", "1 when the service is ready (/readyz returns 200)", NULL);
	m->heartbeat_age =
	        assay_metrics_gauge(m, "assay_heartbeat_age_seconds",
	                            "seconds since the main loop last reported progress", NULL);
	if (m->first == NULL || m->ready_gauge == NULL || m->heartbeat_age == NULL)
		goto fail;
	return m;
fail:
	assay_metrics_destroy(m);
	return NULL;
}

void assay_metrics_destroy(struct assay_metrics *m)
{
	struct family *f, *next;

	if (m == NULL)
		return;
	for (f = m->first; f != NULL; f = next) {
		next = f->next;
		family_free(f);
	}
	pthread_mutex_destroy(&m->lock);
	free(m->svc);
	free(m);
}

void assay_metrics_set_ready(struct assay_metrics *m, bool ready)
{
	if (m == NULL)
		return;
	atomic_store(&m->ready, ready);
	assay_gauge_set(m->ready_gauge, assay_metrics_ready(m) ? 1.0 : 0.0);
}

bool assay_metrics_ready(struct assay_metrics *m)
{
	bool problem;

	if (m == NULL || !atomic_load(&m->ready))
		return false;
	pthread_mutex_lock(&m->lock);
	problem = m->problem[0] != '\0';
	pthread_mutex_unlock(&m->lock);
	return !problem;
}

void assay_metrics_set_problem(struct assay_metrics *m, const char *problem)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	snprintf(m->problem, sizeof(m->problem), "%s", problem ? problem : "");
	pthread_mutex_unlock(&m->lock);
	assay_gauge_set(m->ready_gauge, assay_metrics_ready(m) ? 1.0 : 0.0);
}

bool assay_metrics_problem(struct assay_metrics *m, char *out, size_t size)
{
	bool has;

	if (m == NULL) {
		if (size)
			out[0] = '\0';
		return false;
	}
	pthread_mutex_lock(&m->lock);
	has = m->problem[0] != '\0';
	if (size)
		snprintf(out, size, "%s", m->problem);
	pthread_mutex_unlock(&m->lock);
	return has;
}

void assay_metrics_heartbeat(struct assay_metrics *m)
{
	if (m != NULL)
		atomic_store_explicit(&m->heartbeat_ms, now_ms(), memory_order_relaxed);
}

bool assay_metrics_alive(struct assay_metrics *m, int64_t max_silence_ms)
{
	if (m == NULL)
		return false;
	return now_ms() - atomic_load_explicit(&m->heartbeat_ms, memory_order_relaxed) <=
	       max_silence_ms;
}
