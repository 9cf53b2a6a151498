/*
 * The assay-intake handler: decodes each batch (evidence and audit events, in the order the
 * batch holds them), applies audit events to the projection's overlay, checks each evidence
 * item's form and rules against the projection as it stands at that point of the batch, then,
 * in the batch transaction, settles de-duplication (in memory, plus one batched query for the
 * fingerprints seen before), emits EvidenceAccepted / EvidenceRejected in message order and
 * writes the accepted rows with one COPY and the changed audits with one pipeline.
 *
 * The handler decodes by itself (handler.decode is false) so that a submission the codec
 * refuses for invalid UTF-8 becomes an EvidenceRejected INVALID_UTF8 rather than a dead letter;
 * decoded values are kept in the batch's messages (decoded_ok), which the loop releases with
 * the batch. Events are emitted from write(), before the loop writes the outbox, because the
 * outcome of a resubmitted id needs the query.
 */
#include "intake.h"
#include "assay_audit_projection.h"
#include "intake_dedup.h"
#include "intake_events.h"

#include "assay_catalog.h"
#include "assay_codec.h"
#include "contract_evidence_rejected.h"
#include "assay_err.h"
#include "assay_pg.h"
#include "assay_sha256.h"
#include "assay_strbuf.h"
#include "assay_vec.h"

#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEMA_SUBMITTED "org.assay.v1.EvidenceSubmitted"
#define SCHEMA_ACCEPTED  "org.assay.v1.EvidenceAccepted"
#define SCHEMA_REJECTED  "org.assay.v1.EvidenceRejected"

const struct assay_setting intake_settings[] = {
        {"topic.evidence.submitted", "ASSAY_TOPIC_EVIDENCE_SUBMITTED", ASSAY_SETTING_STRING,
         "assay.evidence.submitted", 0, 0, offsetof(struct intake_config, consumes[0]),
         "topic of submitted evidence (EvidenceSubmitted)"},
        {"topic.audit.events", "ASSAY_TOPIC_AUDIT_EVENTS", ASSAY_SETTING_STRING,
         "assay.audit.events", 0, 0, offsetof(struct intake_config, consumes[1]),
         "topic of audit events (AuditOpened, SoaSubmitted, StageCompleted)"},
        {"topic.evidence.accepted", "ASSAY_TOPIC_EVIDENCE_ACCEPTED", ASSAY_SETTING_STRING,
         "assay.evidence.accepted", 0, 0, offsetof(struct intake_config, produces[0]),
         "topic of accepted evidence (EvidenceAccepted)"},
        {"topic.evidence.rejected", "ASSAY_TOPIC_EVIDENCE_REJECTED", ASSAY_SETTING_STRING,
         "assay.evidence.rejected", 0, 0, offsetof(struct intake_config, produces[1]),
         "topic of rejected evidence (EvidenceRejected)"},
        {"intake.future.tolerance.ms", "ASSAY_INTAKE_FUTURE_TOLERANCE_MS", ASSAY_SETTING_INT,
         "300000", 0, 86400000, offsetof(struct intake_config, future_tolerance_ms),
         "how far collected_at may lie in the future (clock skew), in milliseconds"},
        {"intake.freshness.days", "ASSAY_INTAKE_FRESHNESS_DAYS", ASSAY_SETTING_INT, "365", 1, 36500,
         offsetof(struct intake_config, freshness_days),
         "evidence collected longer ago than this is STALE"},
        {"intake.max.size.bytes", "ASSAY_INTAKE_MAX_SIZE_BYTES", ASSAY_SETTING_INT, "10737418240",
         0, LLONG_MAX, offsetof(struct intake_config, max_size_bytes),
         "largest artefact size_bytes accepted"},
        {"intake.max.attributes", "ASSAY_INTAKE_MAX_ATTRIBUTES", ASSAY_SETTING_INT, "64", 0, 4096,
         offsetof(struct intake_config, max_attributes), "most entries in the attributes map"},
        {"intake.max.string.bytes", "ASSAY_INTAKE_MAX_STRING_BYTES", ASSAY_SETTING_INT, "1024", 16,
         65536, offsetof(struct intake_config, max_string_bytes),
         "longest string (ids, uri, claimed control, attribute key or value), in bytes"},
        {"intake.max.controls", "ASSAY_INTAKE_MAX_CONTROLS", ASSAY_SETTING_INT, "64", 1, 1024,
         offsetof(struct intake_config, max_controls), "most claimed controls per evidence"},
        {NULL, NULL, 0, NULL, 0, 0, 0, "assay-intake settings"},
};

enum item_kind { ITEM_EVIDENCE, ITEM_UTF8 };

/* One evidence message of the batch and what handle() found about it. */
struct item {
	size_t msg;
	enum item_kind kind;
	enum intake_reason form; /* step 1 */
	enum intake_reason rule; /* step 2 (only meaningful when form is INTAKE_OK) */
	bool usable;             /* ids may be echoed in a rejection */
	bool candidate;          /* fingerprint in the set: settle with the query */
	uint64_t fp;
	struct intake_evidence ev; /* views; arrays bound by item_bind */
	size_t c_off, a_off;       /* into in->lists (and resolved, bad) */
	char message[256];
};

struct intake {
	const struct intake_config *cfg;
	struct intake_limits lim;
	struct assay_log *log;
	struct assay_codec *codec;
	struct assay_catalog *catalog;
	struct intake_catalog cat;
	struct intake_dedup *dedup;
	struct assay_audits *audits;       /* the shared audit projection */
	struct assay_contracts *audit_cx;  /* decodes audit events for it */
	struct assay_arena audit_arena;    /* their arrays, reset per event */
	char *group;                       /* consumer group: the projection's rows */
	struct assay_contracts *cx;        /* the generated decoders and encoders */
	struct assay_contract_buf out;     /* the last event encoded */
	struct assay_log_limit reject_log; /* rejection lines */

	/* metrics */
	struct assay_counter *m_accepted, *m_replayed, *m_rejected[INTAKE_REASON_COUNT];
	struct assay_counter *m_queries;
	struct assay_gauge *m_dedup_entries, *m_dedup_bytes, *m_audits;
	struct assay_histogram *m_handle_s, *m_write_s;

	/* per batch */
	int64_t now_ms;
	int retry; /* a transient decode failure: write() returns it */
	char retry_msg[256];
	struct item *items;
	size_t nitems, items_cap;
	struct assay_arena arena; /* decoded arrays and maps, EvidenceAccepted refs */
	struct assay_evidence_submitted submitted; /* the message in hand, decoded */
	struct intake_lists lists;                 /* claimed controls and attributes */
	struct intake_control *resolved;           /* parallel to lists.controls */
	bool *bad;                                 /* parallel to lists.controls */
	size_t r_cap;
	struct { /* fingerprint -> item accepted in this batch */
		uint64_t fp;
		size_t item;
	} * bmap;
	size_t bmap_cap;
	uint64_t *new_fps;
	size_t nnew, new_cap;
	uint64_t n_accepted, n_replayed, n_rejected[INTAKE_REASON_COUNT], n_queries;
	struct assay_copybuf rows;
	struct assay_strbuf scratch, arr_t, arr_i;
};

/* ---- small helpers ---- */

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* v as width decimal digits at p (v < 10^width); returns the end. */
static char *put_digits(char *p, int v, int width)
{
	for (int k = width - 1; k >= 0; k--, v /= 10)
		p[k] = (char)('0' + v % 10);
	return p + width;
}

/* "2024-05-01 12:00:00.250+00" for a COPY timestamptz (digits by hand: snprintf showed in
 * the per-row profile). */
static void format_ts(int64_t ms, char *out, size_t size)
{
	int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	int frac = (int)(ms - sec * 1000);
	time_t t = (time_t)sec;
	struct tm tm;
	char *p = out;

	gmtime_r(&t, &tm);
	if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999 || size < 27) {
		snprintf(out, size, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
		return;
	}
	p = put_digits(p, tm.tm_year + 1900, 4);
	*p++ = '-';
	p = put_digits(p, tm.tm_mon + 1, 2);
	*p++ = '-';
	p = put_digits(p, tm.tm_mday, 2);
	*p++ = ' ';
	p = put_digits(p, tm.tm_hour, 2);
	*p++ = ':';
	p = put_digits(p, tm.tm_min, 2);
	*p++ = ':';
	p = put_digits(p, tm.tm_sec, 2);
	*p++ = '.';
	p = put_digits(p, frac, 3);
	memcpy(p, "+00", 4);
}

static bool str_eq(const struct intake_str *a, const struct intake_str *b)
{
	return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

static bool str_eqz(const struct intake_str *a, const char *z, size_t zlen)
{
	return a->len == zlen && memcmp(a->p, z, zlen) == 0;
}

/* ---- catalog adapter ---- */

static int cat_parse(void *ctx, const char *ref, const char **standard, char *id, size_t id_size,
                     char *errstr, size_t errstr_size)
{
	return assay_control_ref_parse(ctx, ref, standard, id, id_size, errstr, errstr_size);
}

static int cat_find(void *ctx, const char *standard, const char *id)
{
	const struct assay_control *c = assay_catalog_find(ctx, standard, id);

	return c == NULL ? -1 : c->annex_a ? 1 : 0;
}

/* ---- per-batch arenas ---- */

/* Room in resolved and bad (parallel to the claimed controls) for need entries. */
static int verdicts_reserve(struct intake *in, size_t need)
{
	size_t cap = in->r_cap;

	if (need <= cap)
		return 0;
	if (assay_vec_reserve(&in->resolved, &cap, need, sizeof(*in->resolved)))
		return ASSAY_ERR_FATAL;
	cap = in->r_cap;
	if (assay_vec_reserve(&in->bad, &cap, need, sizeof(*in->bad)))
		return ASSAY_ERR_FATAL;
	in->r_cap = cap;
	return 0;
}

static void item_bind(struct intake *in, struct item *it)
{
	it->ev.controls = in->lists.controls ? in->lists.controls + it->c_off : NULL;
	it->ev.attrs = in->lists.attrs ? in->lists.attrs + it->a_off : NULL;
}

/* ---- handle ---- */

static void batch_clear(struct intake *in)
{
	in->nitems = 0;
	intake_lists_clear(&in->lists);
	assay_arena_reset(&in->arena);
	in->nnew = 0;
	in->retry = 0;
	in->n_accepted = in->n_replayed = in->n_queries = 0;
	memset(in->n_rejected, 0, sizeof(in->n_rejected));
	assay_audits_begin(in->audits);
}

/* Decodes message i (EvidenceSubmitted, any writer schema) with the generated decoder into
 * it->ev. Returns 0 when it->ev holds the evidence; SETTLED when the message needs nothing
 * more (an INVALID_UTF8 item was added, the message was dead-lettered, or a transient failure
 * was noted for write()); ASSAY_ERR_FATAL. */
#define SETTLED 1

static int decode_evidence(struct intake *in, struct assay_batch *batch, size_t i,
                           const struct assay_msg *m, struct item *it)
{
	const char *type = NULL;
	char why[512], ignored[256];
	int err;

	err = assay_evidence_submitted_decode(in->cx, m->value, m->value_len, &in->arena,
	                                      &in->submitted, why, sizeof(why));
	if (err == 0)
		return intake_submitted_read(&in->submitted, &it->ev, &in->lists);
	if (err == ASSAY_ERR_REJECT && assay_contract_refused_utf8(in->cx)) {
		it->kind = ITEM_UTF8;
		it->form = INTAKE_INVALID_UTF8;
		snprintf(it->message, sizeof(it->message), "not valid utf-8: %.200s", why);
		in->nitems++;
		return SETTLED;
	}
	if (err == ASSAY_ERR_REJECT) {
		/* another record type on the evidence topic says so rather than why it cannot
		 * be read as EvidenceSubmitted */
		if (assay_contract_frame_type(in->cx, m->value, m->value_len, &type, ignored,
		                              sizeof(ignored)) == 0 &&
		    strcmp(type, SCHEMA_SUBMITTED) != 0)
			snprintf(why, sizeof(why), "unexpected event type %s on the evidence topic",
			         type);
		err = assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT, why);
		return err ? err : SETTLED;
	}
	in->retry = err == ASSAY_ERR_RETRY ? ASSAY_ERR_RETRY : ASSAY_ERR_FATAL;
	snprintf(in->retry_msg, sizeof(in->retry_msg), "decode failed: %.200s", why);
	return SETTLED;
}

static int handle_evidence(struct intake *in, struct assay_batch *batch, size_t i,
                           struct assay_msg *m)
{
	struct item *it;
	int err;

	if (assay_vec_reserve(&in->items, &in->items_cap, in->nitems + 1, sizeof(*in->items)))
		return ASSAY_ERR_FATAL;
	it = &in->items[in->nitems];
	memset(it, 0, sizeof(*it));
	it->msg = i;
	it->form = INTAKE_OK;
	it->rule = INTAKE_OK;
	it->c_off = in->lists.ncontrols;
	it->a_off = in->lists.nattrs;
	err = decode_evidence(in, batch, i, m, it);
	if (err)
		return err == SETTLED ? 0 : err;
	if (verdicts_reserve(in, in->lists.ncontrols))
		return ASSAY_ERR_FATAL;
	it->kind = ITEM_EVIDENCE;
	it->form =
	        intake_check_form(&it->ev, &in->lim, &it->usable, it->message, sizeof(it->message));
	if (it->form == INTAKE_OK) {
		const struct assay_audit *au;

		it->fp = intake_dedup_fingerprint(it->ev.tenant_id.p, it->ev.tenant_id.len,
		                                  it->ev.evidence_id.p, it->ev.evidence_id.len);
		it->candidate = intake_dedup_contains(in->dedup, it->fp);
		au = assay_audits_find(in->audits, it->ev.audit_id.p, it->ev.audit_id.len);
		it->rule = intake_check_rules(&it->ev, au, &in->cat, &in->lim, in->now_ms,
		                              in->resolved + it->c_off, in->bad + it->c_off,
		                              it->message, sizeof(it->message));
	}
	in->nitems++;
	return 0;
}

/* An event of the audit topic: applied to the shared projection (which decodes it with the
 * generated contracts); records it does not read are skipped. */
static int handle_audit(struct intake *in, struct assay_batch *batch, size_t i, struct assay_msg *m)
{
	char why[512] = "";
	int err;

	assay_arena_reset(&in->audit_arena);
	err = assay_audits_apply_frame(in->audits, in->audit_cx, &in->audit_arena, m->value,
	                               m->value_len, NULL, why, sizeof(why));
	if (err == ASSAY_ERR_REJECT)
		return assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT, why);
	if (err == ASSAY_ERR_RETRY) {
		in->retry = ASSAY_ERR_RETRY;
		snprintf(in->retry_msg, sizeof(in->retry_msg), "decode failed: %.200s", why);
		return 0;
	}
	return err < 0 ? err : 0;
}

static int intake_handle(void *ctx, struct assay_batch *batch, char *errstr, size_t errstr_size)
{
	struct intake *in = ctx;
	double t0 = mono_s();
	int err = 0;

	batch_clear(in);
	in->now_ms = wall_ms();
	for (size_t i = 0; i < assay_batch_count(batch) && !err && !in->retry; i++) {
		struct assay_msg *m = assay_batch_msg(batch, i);

		if (m->dead)
			continue;
		if (strcmp(m->topic, in->cfg->consumes[1]) == 0)
			err = handle_audit(in, batch, i, m);
		else
			err = handle_evidence(in, batch, i, m);
	}
	assay_histogram_observe(in->m_handle_s, mono_s() - t0);
	if (err)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "intake handle failed");
	return 0;
}

/* ---- write: de-duplication, events, rows ---- */

struct stored {
	uint64_t fp;
	int row;
};

static int stored_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct stored *)a)->fp, y = ((const struct stored *)b)->fp;

	return x < y ? -1 : x > y;
}

/* The stored sha256 of it's (tenant, evidence id) among the query's rows, or NULL. */
static const char *stored_find(const PGresult *res, const struct stored *st, size_t n,
                               const struct item *it)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (st[mid].fp < it->fp)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < n && st[lo].fp == it->fp; lo++) {
		const char *t = PQgetvalue(res, st[lo].row, 0), *e = PQgetvalue(res, st[lo].row, 1);

		if (str_eqz(&it->ev.tenant_id, t, strlen(t)) &&
		    str_eqz(&it->ev.evidence_id, e, strlen(e)))
			return PQgetvalue(res, st[lo].row, 2);
	}
	return NULL;
}

/* One query for every candidate: their stored hashes. *res NULL when there are none. */
static int query_candidates(struct intake *in, PGconn *conn, PGresult **res, struct stored **st,
                            size_t *nst, char *errstr, size_t errstr_size)
{
	const char *params[2];
	size_t n = 0;
	int err;

	*res = NULL;
	*st = NULL;
	*nst = 0;
	assay_strbuf_reset(&in->arr_t);
	assay_strbuf_reset(&in->arr_i);
	assay_strbuf_append(&in->arr_t, "{", 1);
	assay_strbuf_append(&in->arr_i, "{", 1);
	for (size_t k = 0; k < in->nitems; k++) {
		const struct item *it = &in->items[k];

		if (it->kind != ITEM_EVIDENCE || it->form != INTAKE_OK || !it->candidate)
			continue;
		assay_strbuf_pg_array_next(&in->arr_t);
		assay_strbuf_append_pg_elem(&in->arr_t, it->ev.tenant_id.p, it->ev.tenant_id.len);
		assay_strbuf_pg_array_next(&in->arr_i);
		assay_strbuf_append_pg_elem(&in->arr_i, it->ev.evidence_id.p,
		                            it->ev.evidence_id.len);
		n++;
	}
	if (n == 0)
		return 0;
	assay_strbuf_append(&in->arr_t, "}", 1);
	assay_strbuf_append(&in->arr_i, "}", 1);
	if (in->arr_t.failed || in->arr_i.failed)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
	params[0] = in->arr_t.p;
	params[1] = in->arr_i.p;
	in->n_queries++;
	err = assay_pg_query(conn,
	                     "SELECT e.tenant_id, e.evidence_id, e.sha256 FROM intake_evidence e "
	                     "JOIN unnest($1::text[], $2::text[]) AS k(t, i) "
	                     "ON e.tenant_id = k.t AND e.evidence_id = k.i",
	                     2, params, res, errstr, errstr_size);
	if (err)
		return err;
	*nst = (size_t)PQntuples(*res);
	*st = calloc(*nst ? *nst : 1, sizeof(**st));
	if (*st == NULL) {
		PQclear(*res);
		*res = NULL;
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
	}
	for (size_t r = 0; r < *nst; r++) {
		const char *t = PQgetvalue(*res, (int)r, 0), *e = PQgetvalue(*res, (int)r, 1);

		(*st)[r].fp = intake_dedup_fingerprint(t, strlen(t), e, strlen(e));
		(*st)[r].row = (int)r;
	}
	qsort(*st, *nst, sizeof(**st), stored_cmp);
	return 0;
}

/* The item accepted earlier in this batch under it's key, or NULL. */
static const struct item *bmap_find(const struct intake *in, const struct item *it)
{
	size_t mask = in->bmap_cap - 1;

	for (size_t k = (size_t)it->fp & mask; in->bmap[k].fp; k = (k + 1) & mask) {
		const struct item *o = &in->items[in->bmap[k].item];

		if (in->bmap[k].fp == it->fp && str_eq(&o->ev.tenant_id, &it->ev.tenant_id) &&
		    str_eq(&o->ev.evidence_id, &it->ev.evidence_id))
			return o;
	}
	return NULL;
}

static void bmap_add(struct intake *in, const struct item *it)
{
	size_t mask = in->bmap_cap - 1, k;

	for (k = (size_t)it->fp & mask; in->bmap[k].fp; k = (k + 1) & mask)
		;
	in->bmap[k].fp = it->fp;
	in->bmap[k].item = (size_t)(it - in->items);
}

static int bmap_reset(struct intake *in)
{
	size_t need = 64;

	while (need < in->nitems * 2)
		need *= 2;
	if (need > in->bmap_cap) {
		void *p = realloc(in->bmap, need * sizeof(*in->bmap));

		if (p == NULL)
			return ASSAY_ERR_FATAL;
		in->bmap = p;
		in->bmap_cap = need;
	}
	memset(in->bmap, 0, in->bmap_cap * sizeof(*in->bmap));
	return 0;
}

/* Emits the frame in in->out (an event of schema full name type) caused by message i. */
static int emit_frame(struct intake *in, struct assay_batch *batch, size_t i, const char *topic,
                      const void *key, size_t key_len, const char *type, char *errstr,
                      size_t errstr_size)
{
	int err = assay_batch_emit_typed(batch, i, topic, key, key_len, in->out.data, in->out.len,
	                                 type);

	if (err)
		return assay_errf(err, errstr, errstr_size, "emitting %s failed", type);
	return 0;
}

/* EvidenceAccepted for an accepted item, by the generated encoder. */
static int emit_accepted(struct intake *in, struct assay_batch *batch, const struct item *it,
                         char *errstr, size_t errstr_size)
{
	const struct assay_msg *m = assay_batch_msg(batch, it->msg);
	char event_id[ASSAY_UUID_LEN];
	struct intake_accepted a = {
	        .event_id = event_id,
	        .occurred_at_ms = in->now_ms,
	        .ev = &it->ev,
	        .controls = in->resolved + it->c_off,
	        .topic = m->topic,
	        .partition = m->partition,
	        .offset = m->offset,
	};
	struct assay_evidence_accepted ev;
	int err;

	assay_batch_next_event_id(batch, it->msg, event_id);
	err = intake_accepted_fill(&a, &in->arena, &ev, errstr, errstr_size);
	if (!err)
		err = assay_evidence_accepted_encode(in->cx, &ev, &in->out, errstr, errstr_size);
	if (err)
		return err;
	return emit_frame(in, batch, it->msg, in->cfg->produces[0], it->ev.audit_id.p,
	                  it->ev.audit_id.len, SCHEMA_ACCEPTED, errstr, errstr_size);
}

/* What a rejection keeps of an original key or value too large to travel with it */
#define REJECTED_PREFIX_BYTES 1024

/* One line per rejection at info, rate-limited (a flood of bad input must not flood the
 * log). */
static void log_rejection(struct intake *in, const struct assay_msg *m, enum intake_reason reason,
                          const char *message)
{
	int64_t suppressed;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (!assay_log_limit_allow(&in->reject_log,
	                           (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &suppressed))
		return;
	assay_log_info(in->log, "evidence rejected",
	               ASSAY_LF_STR("reason", intake_reason_name(reason)),
	               ASSAY_LF_STR("message", message), ASSAY_LF_STR("topic", m->topic),
	               ASSAY_LF_INT("partition", m->partition), ASSAY_LF_INT("offset", m->offset),
	               ASSAY_LF_INT("suppressed", suppressed));
}

/*
 * Encodes and emits the EvidenceRejected v (built with the whole original key and value) for
 * message i, exactly sized: when it does not fit the rejected topic, the submission is
 * parked whole and the event carries the first bytes of key and value, the value's size and
 * SHA-256 and where it is parked.
 */
static int emit_rejected_bounded(struct intake *in, struct assay_batch *batch, size_t i,
                                 struct assay_evidence_rejected *v, char *errstr,
                                 size_t errstr_size)
{
	const struct assay_msg *m = assay_batch_msg(batch, i);
	const char *topic = in->cfg->produces[1];
	size_t room = assay_batch_room(batch, topic);
	size_t overhead = strlen("event_type") + strlen(SCHEMA_REJECTED) + 10;
	size_t key_len = m->key_len < REJECTED_PREFIX_BYTES ? m->key_len : REJECTED_PREFIX_BYTES;
	char where[600], sha[ASSAY_SHA256_HEX_LEN], why[256];
	int err;

	err = assay_evidence_rejected_encode(in->cx, v, &in->out, why, sizeof(why));
	if (err == 0 && m->key_len + in->out.len + overhead <= room)
		return emit_frame(in, batch, i, topic, m->key, m->key_len, SCHEMA_REJECTED, errstr,
		                  errstr_size);
	if (err && err != ASSAY_ERR_REJECT)
		return assay_errf(err, errstr, errstr_size, "encoding EvidenceRejected: %s", why);
	err = assay_batch_park(batch, i, "EvidenceRejected too large for its topic", where,
	                       sizeof(where));
	if (err)
		return assay_errf(err, errstr, errstr_size, "parking a submission failed");
	assay_sha256_hex(m->value, m->value_len, sha);
	v->original_key.len = key_len;
	v->original_value.len =
	        m->value_len < REJECTED_PREFIX_BYTES ? m->value_len : REJECTED_PREFIX_BYTES;
	v->has_original_parked = true;
	v->original_parked = (struct assay_str){where, strlen(where)};
	v->has_original_sha256 = true;
	v->original_sha256 = (struct assay_str){sha, strlen(sha)};
	v->has_original_size = true;
	v->original_size = (int64_t)m->value_len;
	err = assay_evidence_rejected_encode(in->cx, v, &in->out, errstr, errstr_size);
	if (err)
		return err;
	/* the key travels as a prefix too: a key as large as the limit would not fit either */
	return emit_frame(in, batch, i, topic, m->key, key_len, SCHEMA_REJECTED, errstr,
	                  errstr_size);
}

static int emit_rejected(struct intake *in, struct assay_batch *batch, const struct item *it,
                         enum intake_reason reason, const char *message, const char *stored_sha256,
                         char *errstr, size_t errstr_size)
{
	const struct assay_msg *m = assay_batch_msg(batch, it->msg);
	const struct intake_evidence *ev = it->kind == ITEM_EVIDENCE ? &it->ev : NULL;
	bool usable = ev != NULL && it->usable;
	struct assay_evidence_rejected v;
	char event_id[ASSAY_UUID_LEN];

	memset(&v, 0, sizeof(v));
	assay_batch_next_event_id(batch, it->msg, event_id);
	v.event_id = (struct assay_str){event_id, strlen(event_id)};
	v.occurred_at = in->now_ms;
	if (usable) {
#define OPT(field, src)                                           \
	do {                                                      \
		v.has_##field = true;                             \
		v.field = (struct assay_str){(src).p, (src).len}; \
	} while (0)
		OPT(tenant_id, ev->tenant_id);
		OPT(audit_id, ev->audit_id);
		OPT(client_id, ev->client_id);
		OPT(evidence_id, ev->evidence_id);
		OPT(submitted_event_id, ev->event_id);
#undef OPT
	}
	v.reason = (enum assay_reject_reason)reason; /* intake_reason follows the schema */
	v.message = (struct assay_str){message, strlen(message)};
	if (ev && (reason == INTAKE_UNKNOWN_CONTROL || reason == INTAKE_OUT_OF_SCOPE ||
	           reason == INTAKE_NO_SOA || reason == INTAKE_EXCLUDED_IN_SOA)) {
		struct assay_str *bad = assay_arena_alloc(&in->arena, ev->ncontrols * sizeof(*bad));

		if (bad == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
		for (size_t k = 0; k < ev->ncontrols; k++)
			if (in->bad[it->c_off + k])
				bad[v.controls.count++] =
				        (struct assay_str){ev->controls[k].p, ev->controls[k].len};
		v.controls.items = bad;
	}
	if (stored_sha256 != NULL) {
		v.has_stored_sha256 = true;
		v.stored_sha256 = (struct assay_str){stored_sha256, strlen(stored_sha256)};
	}
	if (m->key != NULL) {
		v.has_original_key = true;
		v.original_key = (struct assay_bytes){m->key, m->key_len};
	}
	v.original_value =
	        (struct assay_bytes){m->value ? m->value : (const void *)"", m->value_len};
	v.source.topic = (struct assay_str){m->topic, strlen(m->topic)};
	v.source.partition = m->partition;
	v.source.offset = m->offset;
	in->n_rejected[reason]++;
	log_rejection(in, m, reason, message);
	return emit_rejected_bounded(in, batch, it->msg, &v, errstr, errstr_size);
}

/* The evidence row of an accepted item, for COPY intake_evidence. */
static void add_row(struct intake *in, const struct assay_batch *batch, const struct item *it)
{
	const struct assay_msg *m = assay_batch_msg((struct assay_batch *)batch, it->msg);
	const struct intake_evidence *ev = &it->ev;
	struct assay_copybuf *b = &in->rows;
	char ts[48];

	assay_copybuf_text(b, ev->tenant_id.p, ev->tenant_id.len);
	assay_copybuf_text(b, ev->evidence_id.p, ev->evidence_id.len);
	assay_copybuf_text(b, ev->sha256.p, ev->sha256.len);
	assay_copybuf_text(b, ev->audit_id.p, ev->audit_id.len);
	assay_copybuf_text(b, ev->client_id.p, ev->client_id.len);
	assay_copybuf_text(b, ev->event_id.p, ev->event_id.len);
	assay_copybuf_text(b, ev->source_system.p, ev->source_system.len);
	assay_copybuf_text(b, ev->kind.p, ev->kind.len);
	format_ts(ev->collected_at_ms, ts, sizeof(ts));
	assay_copybuf_str(b, ts);
	assay_copybuf_int64(b, ev->size_bytes);
	assay_copybuf_text(b, ev->uri.p, ev->uri.len);
	assay_strbuf_reset(&in->scratch);
	assay_strbuf_append(&in->scratch, "{", 1);
	for (size_t k = 0; k < ev->ncontrols; k++) {
		const struct intake_control *c = &in->resolved[it->c_off + k];
		char ref[INTAKE_STANDARD_LEN + INTAKE_ID_LEN + 2];
		size_t sl = strlen(c->standard), il = strnlen(c->id, sizeof(c->id)), n = 0;

		if (sl + 1 + il <= sizeof(ref)) { /* "ISO27001_2022:A.8.15" */
			memcpy(ref, c->standard, sl);
			ref[sl] = ':';
			memcpy(ref + sl + 1, c->id, il);
			n = sl + 1 + il;
		}
		assay_strbuf_pg_array_next(&in->scratch);
		assay_strbuf_append_pg_elem(&in->scratch, ref, n);
	}
	assay_strbuf_append(&in->scratch, "}", 1);
	assay_copybuf_text(b, in->scratch.p, in->scratch.len);
	assay_strbuf_reset(&in->scratch);
	assay_strbuf_append(&in->scratch, "{", 1);
	for (size_t k = 0; k < ev->nattrs; k++) {
		if (k)
			assay_strbuf_append(&in->scratch, ",", 1);
		assay_strbuf_append_json(&in->scratch, ev->attrs[k].key.p, ev->attrs[k].key.len);
		assay_strbuf_append(&in->scratch, ":", 1);
		assay_strbuf_append_json(&in->scratch, ev->attrs[k].value.p,
		                         ev->attrs[k].value.len);
	}
	assay_strbuf_append(&in->scratch, "}", 1);
	if (in->scratch.failed)
		in->rows.failed = 1; /* reported as out of memory by the COPY */
	assay_copybuf_text(b, in->scratch.p, in->scratch.len);
	assay_copybuf_str(b, m->topic);
	assay_copybuf_int64(b, m->partition);
	assay_copybuf_int64(b, m->offset);
	assay_copybuf_end_row(b);
}

static int intake_write(void *ctx, PGconn *conn, struct assay_batch *batch, char *errstr,
                        size_t errstr_size)
{
	struct intake *in = ctx;
	PGresult *res = NULL;
	struct stored *st = NULL;
	size_t nst = 0;
	double t0 = mono_s();
	bool copying;
	int err;

	if (in->retry)
		return assay_errf(in->retry, errstr, errstr_size, "%s", in->retry_msg);
	in->n_accepted = in->n_replayed = in->n_queries = 0;
	memset(in->n_rejected, 0, sizeof(in->n_rejected));
	in->nnew = 0;
	err = bmap_reset(in);
	if (!err)
		err = query_candidates(in, conn, &res, &st, &nst, errstr, errstr_size);
	if (!err)
		err = assay_audits_write(in->audits, conn, in->group, "assay-intake", errstr,
		                         errstr_size);
	/* the evidence rows stream to the server while the events are built */
	if (!err)
		err = assay_pg_copy_begin(
		        conn,
		        "COPY intake_evidence (tenant_id, evidence_id, sha256, "
		        "audit_id, client_id, submitted_event_id, source_system, "
		        "kind, collected_at, size_bytes, uri, controls, attributes, "
		        "src_topic, src_partition, src_offset) FROM STDIN",
		        &in->rows, errstr, errstr_size);
	copying = err == 0;
	for (size_t k = 0; !err && k < in->nitems; k++) {
		struct item *it = &in->items[k];
		const struct item *prior;
		const char *stored = NULL;

		if (it->kind == ITEM_EVIDENCE)
			item_bind(in, it);
		if (it->form != INTAKE_OK) {
			err = emit_rejected(in, batch, it, it->form, it->message, NULL, errstr,
			                    errstr_size);
			continue;
		}
		prior = bmap_find(in, it);
		if (prior)
			stored = prior->ev.sha256.p; /* 64 bytes, not terminated: copied below */
		else if (it->candidate)
			stored = stored_find(res, st, nst, it);
		if (stored) {
			char sha[65], msg[160];

			memcpy(sha, stored, 64);
			sha[64] = '\0';
			if (str_eqz(&it->ev.sha256, sha, 64)) {
				in->n_replayed++; /* a replay: accepted once, nothing to do */
				continue;
			}
			snprintf(msg, sizeof(msg),
			         "evidence id already stored with sha256 %s; the stored original "
			         "stays",
			         sha);
			err = emit_rejected(in, batch, it, INTAKE_HASH_CONFLICT, msg, sha, errstr,
			                    errstr_size);
			continue;
		}
		if (it->rule != INTAKE_OK) {
			err = emit_rejected(in, batch, it, it->rule, it->message, NULL, errstr,
			                    errstr_size);
			continue;
		}
		bmap_add(in, it);
		add_row(in, batch, it);
		assay_pg_copy_flush(conn, &in->rows);
		err = emit_accepted(in, batch, it, errstr, errstr_size);
		if (!err && assay_vec_reserve(&in->new_fps, &in->new_cap, in->nnew + 1,
		                              sizeof(*in->new_fps)))
			err = ASSAY_ERR_FATAL;
		if (!err)
			in->new_fps[in->nnew++] = it->fp;
		in->n_accepted++;
	}
	PQclear(res);
	free(st);
	if (copying) { /* ended also after a failure, so the connection leaves the copy */
		char ignored[256];

		if (err)
			assay_pg_copy_end(conn, &in->rows, ignored, sizeof(ignored));
		else
			err = assay_pg_copy_end(conn, &in->rows, errstr, errstr_size);
	}
	assay_histogram_observe(in->m_write_s, mono_s() - t0);
	return err;
}

static void intake_committed(void *ctx, struct assay_batch *batch)
{
	struct intake *in = ctx;

	(void)batch;
	for (size_t k = 0; k < in->nnew; k++)
		if (intake_dedup_add(in->dedup, in->new_fps[k]) != 0)
			assay_log_error(in->log, "de-duplication set cannot grow: the database "
			                         "index guards replays until a restart");
	in->nnew = 0;
	assay_audits_commit(in->audits);
	assay_counter_add(in->m_accepted, in->n_accepted);
	assay_counter_add(in->m_replayed, in->n_replayed);
	assay_counter_add(in->m_queries, in->n_queries);
	for (int r = 0; r < INTAKE_REASON_COUNT; r++)
		if (in->n_rejected[r])
			assay_counter_add(in->m_rejected[r], in->n_rejected[r]);
	assay_gauge_set(in->m_dedup_entries, (double)intake_dedup_count(in->dedup));
	assay_gauge_set(in->m_dedup_bytes, (double)intake_dedup_bytes(in->dedup));
	assay_gauge_set(in->m_audits, (double)assay_audits_count(in->audits));
}

static void intake_rolled_back(void *ctx, struct assay_batch *batch)
{
	struct intake *in = ctx;

	(void)batch;
	in->nnew = 0;
	assay_audits_rollback(in->audits);
}

/* ---- start-up state ---- */

/* Streams the ids of every stored row and adds their fingerprints to a new set (*out, the
 * caller's on success, NULL on failure), one row at a time (never the whole table in
 * memory). */
static int load_dedup(PGconn *conn, struct intake_dedup **out, char *errstr, size_t errstr_size)
{
	struct intake_dedup *dedup = NULL;
	PGresult *res;
	int64_t rows = 0;
	int err = 0, n;
	char *line = NULL;

	*out = NULL;

	res = PQexec(conn, "SELECT count(*) FROM intake_evidence");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = assay_pg_result_error(res, conn, "counting evidence failed", errstr,
		                            errstr_size);
		PQclear(res);
		return err;
	}
	rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	dedup = intake_dedup_new((size_t)rows);
	if (dedup == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");
	res = PQexec(conn, "COPY (SELECT tenant_id, evidence_id FROM intake_evidence) TO STDOUT");
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		err = assay_pg_result_error(res, conn, "loading fingerprints failed", errstr,
		                            errstr_size);
		PQclear(res);
		intake_dedup_destroy(dedup);
		return err;
	}
	PQclear(res);
	while ((n = PQgetCopyData(conn, &line, 0)) > 0) {
		uint64_t fp;

		if (!err && (intake_dedup_copy_line(line, (size_t)n, &fp) != 0 ||
		             intake_dedup_add(dedup, fp) != 0))
			err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                 "loading fingerprints failed: bad row or out of memory");
		PQfreemem(line);
	}
	while ((res = PQgetResult(conn)) != NULL) {
		if (!err && PQresultStatus(res) != PGRES_COMMAND_OK)
			err = assay_pg_result_error(res, conn, "loading fingerprints failed",
			                            errstr, errstr_size);
		PQclear(res);
	}
	if (err)
		intake_dedup_destroy(dedup);
	else
		*out = dedup;
	return err;
}

/*
 * The assigned hook: replaces the audit projection and the de-duplication set with what the
 * database holds now (another instance may have written both while it owned partitions this
 * instance now consumes). The new state is built aside and swapped in only when complete, so
 * a failed reload (retried by the loop) leaves the previous state whole. Between batches the
 * overlay is empty; nothing per batch survives the swap. The catalog is not reloaded.
 */
static int intake_assigned(void *ctx, PGconn *conn, const rd_kafka_topic_partition_list_t *parts,
                           char *errstr, size_t errstr_size)
{
	struct intake *in = ctx;
	struct intake_dedup *dedup = NULL;
	int err;

	err = load_dedup(conn, &dedup, errstr, errstr_size);
	if (!err)
		err = assay_audits_load(in->audits, conn, in->group, errstr, errstr_size);
	if (err) {
		intake_dedup_destroy(dedup);
		return err;
	}
	intake_dedup_destroy(in->dedup);
	in->dedup = dedup;
	in->nnew = 0;
	assay_gauge_set(in->m_dedup_entries, (double)intake_dedup_count(in->dedup));
	assay_gauge_set(in->m_dedup_bytes, (double)intake_dedup_bytes(in->dedup));
	assay_gauge_set(in->m_audits, (double)assay_audits_count(in->audits));
	assay_log_info(in->log, "intake state loaded",
	               ASSAY_LF_INT("partitions", parts ? parts->cnt : 0),
	               ASSAY_LF_INT("audits", assay_audits_count(in->audits)),
	               ASSAY_LF_INT("evidence", intake_dedup_count(in->dedup)),
	               ASSAY_LF_INT("dedup_bytes", intake_dedup_bytes(in->dedup)));
	return 0;
}

static int intake_init(void *ctx, const struct assay_service_env *env, char *errstr,
                       size_t errstr_size)
{
	struct intake *in = ctx;
	const struct intake_config *cfg = in->cfg;
	struct assay_metrics *m = env->metrics;
	int err;

	in->log = env->log;
	in->codec = env->codec;
	in->lim.future_tolerance_ms = cfg->future_tolerance_ms;
	in->lim.freshness_ms = cfg->freshness_days * 86400000LL;
	in->lim.max_size_bytes = cfg->max_size_bytes;
	in->lim.max_attributes = (size_t)cfg->max_attributes;
	in->lim.max_string_bytes = (size_t)cfg->max_string_bytes;
	in->lim.max_controls = (size_t)cfg->max_controls;

	if (in->cx == NULL) {
		in->cx = assay_contracts_new(in->codec, errstr, errstr_size);
		if (in->cx == NULL)
			return ASSAY_ERR_FATAL;
	}

	assay_catalog_destroy(in->catalog);
	in->catalog = NULL;
	err = assay_catalog_load(env->conn, &in->catalog, errstr, errstr_size);
	if (err)
		return err;
	in->cat.parse = cat_parse;
	in->cat.find = cat_find;
	in->cat.ctx = in->catalog;

	free(in->group);
	in->group = strdup(env->core != NULL && env->core->group_id != NULL &&
	                                   env->core->group_id[0] != '\0'
	                           ? env->core->group_id
	                           : "assay-intake");
	assay_contracts_destroy(in->audit_cx);
	in->audit_cx = assay_contracts_new(env->codec, errstr, errstr_size);
	if (in->group == NULL || in->audit_cx == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "out of memory");

	/*
	 * The audit projection and the de-duplication set are NOT loaded here: the loop calls
	 * intake_assigned before the first batch of every assignment (and after a fenced batch),
	 * and only that load is current: another instance of the group may write until the
	 * partitions are handed over, after init has run. Loading here as well would read the
	 * whole evidence table twice at every start. Until then both are empty.
	 */
	in->m_accepted = assay_metrics_counter(m, "assay_intake_accepted_total",
	                                       "evidence accepted and stored", NULL);
	in->m_replayed = assay_metrics_counter(
	        m, "assay_intake_replayed_total",
	        "resubmissions of stored evidence with the same hash (no-ops)", NULL);
	in->m_queries = assay_metrics_counter(
	        m, "assay_intake_dedup_queries_total",
	        "batched queries for evidence ids whose fingerprint was seen before", NULL);
	for (int r = 0; r < INTAKE_REASON_COUNT; r++) {
		char labels[64];

		snprintf(labels, sizeof(labels), "reason=\"%s\"", intake_reason_name(r));
		in->m_rejected[r] = assay_metrics_counter(m, "assay_intake_rejected_total",
		                                          "evidence rejected, by reason", labels);
	}
	in->m_dedup_entries = assay_metrics_gauge(m, "assay_intake_dedup_entries",
	                                          "fingerprints in the de-duplication set", NULL);
	in->m_dedup_bytes = assay_metrics_gauge(m, "assay_intake_dedup_bytes",
	                                        "memory of the de-duplication set", NULL);
	in->m_audits =
	        assay_metrics_gauge(m, "assay_intake_audits", "audits in the projection", NULL);
	{
		static const double seconds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
		                                 0.01,   0.025,   0.05,   0.1,   0.25,   1};

		in->m_handle_s =
		        assay_metrics_histogram(m, "assay_intake_handle_seconds",
		                                "decode and rules per batch (intake handle)",
		                                seconds, sizeof(seconds) / sizeof(seconds[0]));
		in->m_write_s = assay_metrics_histogram(
		        m, "assay_intake_write_seconds",
		        "de-duplication, events and COPY per batch (intake write)", seconds,
		        sizeof(seconds) / sizeof(seconds[0]));
	}
	return 0;
}

/* ---- lifetime ---- */

static void intake_destroy(struct intake *in);

/* A handler context reading its settings from cfg (borrowed: filled by the configuration
 * load before init runs). NULL when out of memory. */
static struct intake *intake_new(const struct intake_config *cfg)
{
	struct intake *in = calloc(1, sizeof(*in));

	if (in == NULL)
		return NULL;
	in->cfg = cfg;
	in->audits = assay_audits_new(NULL);
	assay_arena_init(&in->audit_arena);
	in->dedup = intake_dedup_new(0);
	if (in->audits == NULL || in->dedup == NULL) {
		intake_destroy(in);
		return NULL;
	}
	assay_copybuf_init(&in->rows);
	assay_arena_init(&in->arena);
	assay_contract_buf_init(&in->out);
	intake_lists_init(&in->lists);
	/* resolved and bad always exist, so resolved + offset is never arithmetic on NULL */
	if (verdicts_reserve(in, 256)) {
		intake_destroy(in);
		return NULL;
	}
	return in;
}

static void intake_destroy(struct intake *in)
{
	if (in == NULL)
		return;
	assay_contracts_destroy(in->cx);
	assay_contract_buf_release(&in->out);
	assay_arena_release(&in->arena);
	assay_catalog_destroy(in->catalog);
	intake_dedup_destroy(in->dedup);
	assay_audits_destroy(in->audits);
	assay_contracts_destroy(in->audit_cx);
	assay_arena_release(&in->audit_arena);
	free(in->group);
	free(in->items);
	intake_lists_release(&in->lists);
	free(in->resolved);
	free(in->bad);
	free(in->bmap);
	free(in->new_fps);
	assay_strbuf_release(&in->scratch);
	assay_strbuf_release(&in->arr_t);
	assay_strbuf_release(&in->arr_i);
	assay_copybuf_release(&in->rows);
	free(in);
}

const struct intake_limits *intake_limits(const struct intake *in)
{
	return &in->lim;
}

/* The settings, filled by the configuration load before init runs (the one object the
 * static descriptor can point at) */
static struct intake_config intake_cfg;

static void *intake_create(void *cfg)
{
	return intake_new(cfg);
}

static void intake_free(void *ctx)
{
	intake_destroy(ctx);
}

const struct assay_service_def intake_service = {
        .name = "assay-intake",
        .description = "validates, de-duplicates and stores evidence; accepts or rejects it "
                       "with reasons",
        /* the arrays are filled by the configuration load, before they are read */
        .consumes = (const char *const *)intake_cfg.consumes,
        .nconsumes = 2,
        .produces = (const char *const *)intake_cfg.produces,
        .nproduces = 2,
        .metrics_port = 9102,
        .settings = intake_settings,
        .settings_target = &intake_cfg,
        .handler =
                {
                        .stage = "intake",
                        .decode = false,
                        .handle = intake_handle,
                        .write = intake_write,
                        .committed = intake_committed,
                        .rolled_back = intake_rolled_back,
                        .assigned = intake_assigned,
                },
        .init = intake_init,
        .create = intake_create,
        .destroy = intake_free,
};
