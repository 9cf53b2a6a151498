/*
 * assay-risk's handler (risk.h): reads ControlMapped, AuditOpened and SoaSubmitted into the
 * plain structs of risk_state.h, lets the state recompute what the batch touched, publishes
 * one RiskScored per changed audit and standard, and writes the changed rows in one libpq
 * pipeline (array parameters with unnest, so a batch is one round trip whatever its size)
 * and its evidence, grouped per control, source, tier and link kind, with one COPY to the
 * append-only log risk_evidence_links (sql/008_risk_evidence_log.sql), which a batch folds
 * into risk_evidence_base every risk.evidence.compact.rows rows.
 * At start (init) it loads the catalog, the model data and the stored state; after every
 * partition assignment and every fenced batch (assigned) it reads the model data and the
 * stored state again and replaces the state in memory, since another instance of the group
 * may have changed the tables while it owned those partitions. So several instances can share
 * one consumer group; the load at start only makes the first assignment's reload redundant.
 */
#include "risk.h"
#include "risk_state.h"

#include "assay_catalog.h"
#include "assay_codec.h"
#include "assay_err.h"
#include "assay_pg.h"
#include "assay_strbuf.h"
#include "assay_vec.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEMA_MAPPED "org.assay.v1.ControlMapped"
#define SCHEMA_OPENED "org.assay.v1.AuditOpened"
#define SCHEMA_SOA    "org.assay.v1.SoaSubmitted"
#define SCHEMA_SCORED "org.assay.v1.RiskScored"
#define METRICS_PORT  9104

#define CFG(field)    offsetof(struct risk_config, field)

const struct assay_setting risk_settings[] = {
        {"topic.control.mapped", "ASSAY_TOPIC_CONTROL_MAPPED", ASSAY_SETTING_STRING,
         "assay.control.mapped", 0, 0, CFG(consumes[0]),
         "topic of evidence links to controls (ControlMapped)"},
        {"topic.audit.events", "ASSAY_TOPIC_AUDIT_EVENTS", ASSAY_SETTING_STRING,
         "assay.audit.events", 0, 0, CFG(consumes[1]),
         "topic of audit events (AuditOpened, SoaSubmitted; others are skipped)"},
        {"topic.risk.scored", "ASSAY_TOPIC_RISK_SCORED", ASSAY_SETTING_STRING, "assay.risk.scored",
         0, 0, CFG(produces[0]), "topic of changed risk scores (RiskScored)"},
        {"risk.likelihood.default", "ASSAY_RISK_LIKELIHOOD_DEFAULT", ASSAY_SETTING_INT, "3", 1, 5,
         CFG(likelihood_default),
         "likelihood (1-5) of controls whose group has no row in risk_theme_defaults"},
        {"risk.impact.default", "ASSAY_RISK_IMPACT_DEFAULT", ASSAY_SETTING_INT, "3", 1, 5,
         CFG(impact_default),
         "impact (1-5) of controls whose group has no row in risk_theme_defaults"},
        {"risk.ai.impact.high_risk", "ASSAY_RISK_AI_IMPACT_HIGH_RISK", ASSAY_SETTING_INT, "4", 0, 5,
         CFG(ai_high_risk),
         "least impact of ISO 42001 controls with an EU AI Act high-risk system in scope "
         "(organization a user); domain-rules 3.6"},
        {"risk.ai.impact.high_risk_provider", "ASSAY_RISK_AI_IMPACT_HIGH_RISK_PROVIDER",
         ASSAY_SETTING_INT, "5", 0, 5, CFG(ai_high_risk_provider),
         "least impact of ISO 42001 controls with a high-risk system the organization provides "
         "or produces"},
        {"risk.ai.impact.limited_risk", "ASSAY_RISK_AI_IMPACT_LIMITED_RISK", ASSAY_SETTING_INT, "3",
         0, 5, CFG(ai_limited_risk),
         "least impact of ISO 42001 controls with a limited-risk (transparency) system in scope"},
        {"risk.ai.impact.not_assessed", "ASSAY_RISK_AI_IMPACT_NOT_ASSESSED", ASSAY_SETTING_INT, "3",
         0, 5, CFG(ai_not_assessed),
         "least impact of ISO 42001 controls with a system whose AI Act tier is not assessed"},
        {"risk.strength.automated", "ASSAY_RISK_STRENGTH_AUTOMATED", ASSAY_SETTING_INT, "1000", 0,
         1000, CFG(tier[RISK_TIER_AUTOMATED]),
         "strength per mille of a fresh direct automated scan or test result "
         "(CONFIGURATION_SCAN, TEST_REPORT, BIAS_EVALUATION)"},
        {"risk.strength.sampled", "ASSAY_RISK_STRENGTH_SAMPLED", ASSAY_SETTING_INT, "700", 0, 1000,
         CFG(tier[RISK_TIER_SAMPLED]),
         "strength per mille of sampled logs and reviews (LOG_SAMPLE, ACCESS_REVIEW)"},
        {"risk.strength.document", "ASSAY_RISK_STRENGTH_DOCUMENT", ASSAY_SETTING_INT, "450", 0,
         1000, CFG(tier[RISK_TIER_DOCUMENT]),
         "strength per mille of documents (POLICY, MODEL_CARD, DATA_PROVENANCE)"},
        {"risk.strength.attestation", "ASSAY_RISK_STRENGTH_ATTESTATION", ASSAY_SETTING_INT, "250",
         0, 1000, CFG(tier[RISK_TIER_ATTESTATION]), "strength per mille of an ATTESTATION"},
        {"risk.strength.other", "ASSAY_RISK_STRENGTH_OTHER", ASSAY_SETTING_INT, "150", 0, 1000,
         CFG(tier[RISK_TIER_OTHER]), "strength per mille of OTHER evidence"},
        {"risk.link.direct", "ASSAY_RISK_LINK_DIRECT", ASSAY_SETTING_INT, "1000", 0, 1000,
         CFG(link_direct), "factor per mille of a DIRECT link"},
        {"risk.link.automatic", "ASSAY_RISK_LINK_AUTOMATIC", ASSAY_SETTING_INT, "800", 0, 1000,
         CFG(link_automatic),
         "factor per mille of an AUTOMATIC link (NEEDS_CONFIRMATION always counts 0)"},
        {"risk.freshness.full.days", "ASSAY_RISK_FRESHNESS_FULL_DAYS", ASSAY_SETTING_INT, "90", 0,
         36500, CFG(fresh_full_days),
         "evidence up to this many days old (against the audit's newest event day) has full "
         "strength"},
        {"risk.freshness.window.days", "ASSAY_RISK_FRESHNESS_WINDOW_DAYS", ASSAY_SETTING_INT, "365",
         1, 36500, CFG(fresh_window_days),
         "evidence this many days old or older has no strength; linear decay in between"},
        {"risk.coverage.single_source", "ASSAY_RISK_COVERAGE_SINGLE_SOURCE", ASSAY_SETTING_INT,
         "700", 0, 1000, CFG(single_source), "most coverage per mille one source system can give"},
        {"risk.coverage.source_bonus", "ASSAY_RISK_COVERAGE_SOURCE_BONUS", ASSAY_SETTING_INT, "150",
         0, 1000, CFG(source_bonus),
         "coverage per mille each further independent source adds (scaled by its strength)"},
        {"risk.residual.max_reduction", "ASSAY_RISK_RESIDUAL_MAX_REDUCTION", ASSAY_SETTING_INT,
         "800", 0, 1000, CFG(max_reduction),
         "share per mille of the inherent score that full coverage removes"},
        {"risk.band.low", "ASSAY_RISK_BAND_LOW", ASSAY_SETTING_INT, "5", 2, 25, CFG(band_low),
         "lowest score of band LOW (below: VERY_LOW); domain-rules 3.1"},
        {"risk.band.medium", "ASSAY_RISK_BAND_MEDIUM", ASSAY_SETTING_INT, "10", 2, 25,
         CFG(band_medium), "lowest score of band MEDIUM"},
        {"risk.band.high", "ASSAY_RISK_BAND_HIGH", ASSAY_SETTING_INT, "15", 2, 25, CFG(band_high),
         "lowest score of band HIGH"},
        {"risk.band.critical", "ASSAY_RISK_BAND_CRITICAL", ASSAY_SETTING_INT, "20", 2, 25,
         CFG(band_critical), "lowest score of band CRITICAL"},
        {"risk.top.count", "ASSAY_RISK_TOP_COUNT", ASSAY_SETTING_INT, "5", 0, RISK_TOP_MAX,
         CFG(top_count), "top risks listed per standard summary"},
        {"risk.evidence.compact.rows", "ASSAY_RISK_EVIDENCE_COMPACT_ROWS", ASSAY_SETTING_INT,
         "100000", 1, 1000000000, CFG(compact_rows),
         "rows appended to the evidence log (risk_evidence_links) after which a batch folds "
         "the log into risk_evidence_base; bounds the log a state reload aggregates"},
        {NULL, NULL, 0, NULL, 0, 0, 0, "assay-risk settings"},
};

void risk_config_params(const struct risk_config *cfg, struct risk_params *p)
{
	risk_params_default(p);
	p->likelihood_default = (int)cfg->likelihood_default;
	p->impact_default = (int)cfg->impact_default;
	p->ai_impact_high_risk = (int)cfg->ai_high_risk;
	p->ai_impact_high_risk_provider = (int)cfg->ai_high_risk_provider;
	p->ai_impact_limited_risk = (int)cfg->ai_limited_risk;
	p->ai_impact_not_assessed = (int)cfg->ai_not_assessed;
	for (int t = 0; t < RISK_NTIERS; t++)
		p->tier_permille[t] = (int)cfg->tier[t];
	p->link_permille[RISK_LINK_DIRECT] = (int)cfg->link_direct;
	p->link_permille[RISK_LINK_AUTOMATIC] = (int)cfg->link_automatic;
	p->fresh_full_days = (int)cfg->fresh_full_days;
	p->fresh_window_days = (int)cfg->fresh_window_days;
	p->single_source_permille = (int)cfg->single_source;
	p->source_bonus_permille = (int)cfg->source_bonus;
	p->max_reduction_permille = (int)cfg->max_reduction;
	p->band_min[RISK_BAND_LOW] = (int)cfg->band_low;
	p->band_min[RISK_BAND_MEDIUM] = (int)cfg->band_medium;
	p->band_min[RISK_BAND_HIGH] = (int)cfg->band_high;
	p->band_min[RISK_BAND_CRITICAL] = (int)cfg->band_critical;
	p->top_count = (int)cfg->top_count;
}

/* ---- PostgreSQL array literals ---- */

/* One column of an unnest() statement: a text[] literal in an assay_strbuf. */
static void arr_reset(struct assay_strbuf *a)
{
	assay_strbuf_reset(a);
	assay_strbuf_appendc(a, '{');
}

static void arr_text(struct assay_strbuf *a, const char *s)
{
	assay_strbuf_pg_array_next(a);
	assay_strbuf_append_pg_elem(a, s, strlen(s));
}

static void arr_int(struct assay_strbuf *a, long long v)
{
	assay_strbuf_pg_array_next(a);
	assay_strbuf_appendf(a, "%lld", v);
}

static void arr_bool(struct assay_strbuf *a, bool v)
{
	assay_strbuf_pg_array_next(a);
	assay_strbuf_appendc(a, v ? 't' : 'f');
}

static void arr_null(struct assay_strbuf *a)
{
	assay_strbuf_pg_array_next(a);
	assay_strbuf_append(a, "NULL", 4);
}

static const char *arr_done(struct assay_strbuf *a)
{
	assay_strbuf_appendc(a, '}');
	return assay_strbuf_str(a);
}

/* A comma-joined list being built (for string_to_array). */
struct joined {
	char buf[4096];
	size_t len;
};

static void joined_add(struct joined *j, const char *s)
{
	int n = snprintf(j->buf + j->len, sizeof(j->buf) - j->len, "%s%s", j->len ? "," : "", s);

	if (n > 0 && (size_t)n < sizeof(j->buf) - j->len)
		j->len += (size_t)n;
}

/* ---- the handler context ---- */

#define NCOLS 16

struct risk {
	const struct risk_config *cfg;
	struct risk_params params;
	struct assay_catalog *cat;
	struct risk_state *state;
	const struct assay_schema *s_scored;
	avro_value_t v_scored;
	bool have_value;
	struct assay_counter *m_published, *m_recomputed, *m_skipped;
	struct assay_histogram *m_write;  /* seconds of risk_write's statements */
	struct assay_log *log;            /* the service's, from init */
	const struct risk_batch_out *out; /* of the batch in hand, from handle */
	struct assay_pipeline pipe;
	struct assay_strbuf cols[NCOLS];
	/* the evidence log: the batch's deltas grouped, their COPY rows, and how many rows the
	 * log holds since its last compaction (as far as this instance knows: read at every
	 * reload, counted up by its own batches) */
	struct risk_evidence_delta *ev;
	int32_t *ev_items;
	size_t cap_ev;
	struct assay_copybin copy;
	long long log_rows;
	size_t batch_rows;   /* rows the batch in hand appended */
	bool batch_compacts; /* the batch in hand folds the log into risk_evidence_base */
	/* decode scratch */
	const char **strs;
	size_t cap_strs;
	struct risk_link_ev *links;
	size_t cap_links;
	struct risk_ai_system *ai;
	size_t cap_ai;
	char reason[256];
};

static struct risk *risk_new(const struct risk_config *cfg)
{
	struct risk *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->cfg = cfg;
	assay_pipeline_init(&r->pipe);
	assay_copybin_init(&r->copy);
	return r;
}

static void risk_fini(void *ctx)
{
	struct risk *r = ctx;

	if (r->have_value)
		avro_value_decref(&r->v_scored); /* before the codec that owns its class goes */
	r->have_value = false;
}

static void risk_destroy(struct risk *r)
{
	if (r == NULL)
		return;
	risk_fini(r);
	risk_state_destroy(r->state);
	assay_catalog_destroy(r->cat);
	assay_pipeline_release(&r->pipe);
	assay_copybin_release(&r->copy);
	free(r->ev);
	free(r->ev_items);
	for (int i = 0; i < NCOLS; i++)
		assay_strbuf_release(&r->cols[i]);
	free(r->strs);
	free(r->links);
	free(r->ai);
	free(r);
}

/* ---- decoding ---- */

static int bad(char *errstr, size_t errstr_size, const char *type, const char *field)
{
	return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size, "%s invalid: field %s", type,
	                  field);
}

/* Symbol of an enum value (array element). */
static const char *enum_symbol(avro_value_t *v)
{
	int idx;

	if (avro_value_get_type(v) != AVRO_ENUM || avro_value_get_enum(v, &idx) != 0)
		return NULL;
	return avro_schema_enum_get(avro_value_get_schema(v), idx);
}

static int read_mapped(struct risk *r, avro_value_t *v, struct risk_mapped_ev *ev, char *errstr,
                       size_t errstr_size)
{
	avro_value_t arr, elem;
	size_t n;

	memset(ev, 0, sizeof(*ev));
	if (assay_value_string(v, "audit_id", &ev->audit_id, NULL))
		return bad(errstr, errstr_size, "control mapped", "audit_id");
	if (assay_value_string(v, "tenant_id", &ev->tenant_id, NULL))
		return bad(errstr, errstr_size, "control mapped", "tenant_id");
	if (assay_value_string(v, "client_id", &ev->client_id, NULL))
		return bad(errstr, errstr_size, "control mapped", "client_id");
	if (assay_value_long(v, "occurred_at", &ev->occurred_at))
		return bad(errstr, errstr_size, "control mapped", "occurred_at");
	if (assay_value_string(v, "source_system", &ev->source_system, NULL))
		return bad(errstr, errstr_size, "control mapped", "source_system");
	if (assay_value_enum_or(v, "kind", "OTHER", &ev->kind))
		return bad(errstr, errstr_size, "control mapped", "kind");
	if (assay_value_long(v, "collected_at", &ev->collected_at))
		return bad(errstr, errstr_size, "control mapped", "collected_at");
	if (assay_value_array(v, "links", &arr, &n))
		return bad(errstr, errstr_size, "control mapped", "links");
	if (assay_vec_reserve(&r->links, &r->cap_links, n, sizeof(*r->links)))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk: out of memory");
	for (size_t i = 0; i < n; i++) {
		struct risk_link_ev *l = &r->links[i];
		const char *kind;

		if (assay_value_array_get(&arr, i, &elem) ||
		    assay_value_enum(&elem, "standard", &l->standard) ||
		    assay_value_string(&elem, "control_id", &l->control_id, NULL) ||
		    assay_value_enum(&elem, "link_kind", &kind))
			return bad(errstr, errstr_size, "control mapped", "links");
		l->link = risk_link_parse(kind);
		if (l->link < 0)
			return bad(errstr, errstr_size, "control mapped", "links.link_kind");
	}
	ev->links = r->links;
	ev->nlinks = n;
	return 0;
}

static int read_opened(struct risk *r, avro_value_t *v, struct risk_opened_ev *ev, char *errstr,
                       size_t errstr_size)
{
	avro_value_t arr, elem, roles, role;
	size_t n, nai, nroles;

	memset(ev, 0, sizeof(*ev));
	if (assay_value_string(v, "audit_id", &ev->audit_id, NULL) ||
	    assay_value_string(v, "tenant_id", &ev->tenant_id, NULL) ||
	    assay_value_string(v, "client_id", &ev->client_id, NULL) ||
	    assay_value_long(v, "occurred_at", &ev->occurred_at))
		return bad(errstr, errstr_size, "audit opened", "ids or occurred_at");
	if (assay_value_array(v, "standards", &arr, &n))
		return bad(errstr, errstr_size, "audit opened", "standards");
	if (assay_vec_reserve(&r->strs, &r->cap_strs, n, sizeof(*r->strs)))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk: out of memory");
	for (size_t i = 0; i < n; i++)
		if (assay_value_array_get(&arr, i, &elem) ||
		    assay_value_enum(&elem, "standard", &r->strs[i]))
			return bad(errstr, errstr_size, "audit opened", "standards.standard");
	ev->standards = r->strs;
	ev->nstandards = n;
	if (assay_value_array_opt(v, "ai_systems", &arr, &nai))
		return bad(errstr, errstr_size, "audit opened", "ai_systems");
	if (assay_vec_reserve(&r->ai, &r->cap_ai, nai, sizeof(*r->ai)))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk: out of memory");
	for (size_t i = 0; i < nai; i++) {
		struct risk_ai_system *s = &r->ai[i];
		const char *tier;

		memset(s, 0, sizeof(*s));
		if (assay_value_array_get(&arr, i, &elem) ||
		    assay_value_string(&elem, "ai_system_id", &s->id, NULL) ||
		    assay_value_enum(&elem, "eu_ai_act_tier", &tier) ||
		    assay_value_array(&elem, "roles", &roles, &nroles))
			return bad(errstr, errstr_size, "audit opened", "ai_systems");
		s->tier = risk_ai_tier_parse(tier);
		if (s->tier < 0)
			s->tier = RISK_AI_NOT_ASSESSED; /* a tier this reader does not know */
		for (size_t k = 0; k < nroles; k++)
			if (assay_value_array_get(&roles, k, &role) == 0)
				s->roles |= risk_ai_role_parse(enum_symbol(&role));
	}
	ev->ai = r->ai;
	ev->nai = nai;
	return 0;
}

static int read_soa(struct risk *r, avro_value_t *v, struct risk_soa_ev *ev, char *errstr,
                    size_t errstr_size)
{
	avro_value_t arr, elem;
	size_t n;

	memset(ev, 0, sizeof(*ev));
	if (assay_value_string(v, "audit_id", &ev->audit_id, NULL) ||
	    assay_value_string(v, "tenant_id", &ev->tenant_id, NULL) ||
	    assay_value_string(v, "client_id", &ev->client_id, NULL) ||
	    assay_value_long(v, "occurred_at", &ev->occurred_at) ||
	    assay_value_enum(v, "standard", &ev->standard) ||
	    assay_value_int(v, "revision", &ev->revision))
		return bad(errstr, errstr_size, "soa submitted", "ids, standard or revision");
	if (assay_value_array(v, "rows", &arr, &n))
		return bad(errstr, errstr_size, "soa submitted", "rows");
	if (assay_vec_reserve(&r->strs, &r->cap_strs, n, sizeof(*r->strs)))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk: out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *id;
		bool applicable;

		if (assay_value_array_get(&arr, i, &elem) ||
		    assay_value_string(&elem, "control_id", &id, NULL) ||
		    assay_value_bool(&elem, "applicable", &applicable))
			return bad(errstr, errstr_size, "soa submitted", "rows");
		if (!applicable)
			r->strs[ev->nexcluded++] = id;
	}
	ev->excluded = r->strs;
	return 0;
}

/* ---- publishing ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_null(avro_value_t *rec, const char *field)
{
	avro_value_t x;

	return assay_value_field(rec, field, AVRO_NULL, &x) != 0 || avro_value_set_null(&x) != 0;
}

static int set_opt_int(avro_value_t *rec, const char *field, bool present, int v)
{
	return present ? assay_value_set_int(rec, field, v) != 0 : set_null(rec, field);
}

static int set_opt_band(avro_value_t *rec, const char *field, int band)
{
	const char *sym = risk_band_symbol(band);

	return sym ? assay_value_set_enum(rec, field, sym) != 0 : set_null(rec, field);
}

static void blocking_reason(const struct risk_audit *a, char *buf, size_t size)
{
	const struct risk_ai_effect *e = &a->h.effect;

	snprintf(buf, size, "prohibited practice (EU AI Act Art. 5): AI system %s",
	         e->blocking && e->blocking_system < a->h.nai ? a->h.ai[e->blocking_system].id
	                                                      : "?");
}

static int emit_result(struct risk *r, struct assay_batch *batch, const struct risk_batch_out *out,
                       const struct risk_result *res, int64_t now, char *errstr, size_t errstr_size)
{
	const struct risk_audit *a = res->audit;
	avro_value_t *v = &r->v_scored, arr, elem, dims, sum, tops;
	char event_id[ASSAY_UUID_LEN];
	int err = 0;

	avro_value_reset(v);
	assay_batch_next_event_id(batch, res->msg, event_id);
	err |= assay_value_set_string(v, "event_id", event_id);
	err |= assay_value_set_string(v, "tenant_id", a->h.tenant_id);
	err |= assay_value_set_long(v, "occurred_at", now);
	err |= assay_value_set_string(v, "audit_id", a->audit_id);
	err |= assay_value_set_string(v, "client_id", a->h.client_id);
	err |= assay_value_set_enum(v, "standard", risk_state_std_symbol(r->state, res->std));
	err |= assay_value_field(v, "controls", AVRO_ARRAY, &arr);
	for (size_t i = 0; !err && i < res->nchanges; i++) {
		const struct risk_change *c = &out->changes[res->first_change + i];
		const struct risk_score *sc = &c->now;
		unsigned tags = risk_state_control_dims(r->state, c->std, c->pos);

		err |= avro_value_append(&arr, &elem, NULL) != 0;
		err |= assay_value_set_string(&elem, "control_id",
		                              risk_state_control(r->state, c->std, c->pos)->id);
		err |= assay_value_set_int(&elem, "likelihood", sc->likelihood);
		err |= assay_value_set_int(&elem, "impact", sc->impact);
		err |= assay_value_set_int(&elem, "inherent_score", sc->inherent);
		err |= assay_value_set_int(&elem, "coverage_permille", sc->coverage);
		err |= assay_value_set_int(&elem, "direct_links", sc->links[RISK_LINK_DIRECT]);
		err |= assay_value_set_int(&elem, "automatic_links",
		                           sc->links[RISK_LINK_AUTOMATIC]);
		err |= assay_value_set_int(&elem, "pending_links", sc->links[RISK_LINK_PENDING]);
		err |= assay_value_set_int(&elem, "independent_sources", sc->sources);
		err |= set_opt_int(&elem, "residual_score", !sc->blocking, sc->residual);
		err |= set_opt_band(&elem, "band", sc->band);
		err |= set_opt_int(&elem, "previous_residual_score", c->had_prev, c->prev_residual);
		err |= set_opt_band(&elem, "previous_band", c->had_prev ? c->prev_band : -1);
		err |= assay_value_set_bool(&elem, "blocking", sc->blocking);
		if (sc->blocking) {
			blocking_reason(a, r->reason, sizeof(r->reason));
			err |= assay_value_set_string(&elem, "blocking_reason", r->reason);
		} else {
			err |= set_null(&elem, "blocking_reason");
		}
		err |= assay_value_field(&elem, "dimensions", AVRO_ARRAY, &dims);
		for (int d = 0; !err && d < RISK_NDIMS; d++) {
			avro_value_t sym;
			int idx;

			if (!(tags & (1u << d)))
				continue;
			err |= avro_value_append(&dims, &sym, NULL) != 0;
			idx = avro_schema_enum_get_by_name(avro_value_get_schema(&sym),
			                                   risk_dim_symbol(d));
			err |= idx < 0 || avro_value_set_enum(&sym, idx) != 0;
		}
	}
	err |= assay_value_field(v, "summary", AVRO_RECORD, &sum);
	if (!err) {
		const struct risk_summary *s = &res->summary;

		err |= assay_value_set_int(&sum, "applicable_controls", s->applicable);
		err |= assay_value_set_int(&sum, "controls_with_evidence", s->with_evidence);
		err |= assay_value_set_int(&sum, "very_low", s->bands[RISK_BAND_VERY_LOW]);
		err |= assay_value_set_int(&sum, "low", s->bands[RISK_BAND_LOW]);
		err |= assay_value_set_int(&sum, "medium", s->bands[RISK_BAND_MEDIUM]);
		err |= assay_value_set_int(&sum, "high", s->bands[RISK_BAND_HIGH]);
		err |= assay_value_set_int(&sum, "critical", s->bands[RISK_BAND_CRITICAL]);
		err |= assay_value_set_int(&sum, "blocking", s->blocking);
		err |= assay_value_field(&sum, "top_risks", AVRO_ARRAY, &tops);
		for (int i = 0; !err && i < s->ntop; i++) {
			err |= avro_value_append(&tops, &elem, NULL) != 0;
			err |= assay_value_set_string(&elem, "control_id", s->top[i].control_id);
			err |= assay_value_set_int(&elem, "residual_score", s->top[i].residual);
			err |= assay_value_set_enum(&elem, "band",
			                            risk_band_symbol(s->top[i].band));
		}
	}
	err |= assay_value_field(v, "dimensions", AVRO_ARRAY, &arr);
	for (int d = 0; !err && res->with_dims && d < RISK_NDIMS; d++) {
		const struct risk_dim_score *now_d = &res->dims[d], *prev = &res->prev_dims[d];
		bool had = res->prev_dims_valid && prev->residual > 0;

		err |= avro_value_append(&arr, &elem, NULL) != 0;
		err |= assay_value_set_enum(&elem, "dimension", risk_dim_symbol(d));
		err |= assay_value_set_int(&elem, "controls", now_d->controls);
		err |= set_opt_int(&elem, "residual_score", now_d->residual > 0, now_d->residual);
		err |= set_opt_band(&elem, "band", now_d->band);
		err |= set_opt_int(&elem, "previous_residual_score", had, prev->residual);
		err |= set_opt_band(&elem, "previous_band", had ? prev->band : -1);
	}
	if (err)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "building RiskScored failed");
	return assay_batch_emit_avro(batch, res->msg, r->cfg->produces[0], a->audit_id,
	                             strlen(a->audit_id), r->s_scored, v, errstr, errstr_size);
}

/* ---- handler ---- */

static int risk_handle(void *ctx, struct assay_batch *batch, char *errstr, size_t errstr_size)
{
	struct risk *r = ctx;
	const struct risk_batch_out *out;
	int64_t now = now_ms();
	int err;

	risk_state_begin(r->state);
	for (size_t i = 0; i < assay_batch_count(batch); i++) {
		struct assay_msg *m = assay_batch_msg(batch, i);
		const char *type;
		char why[512];

		if (m->dead || !m->decoded_ok)
			continue;
		type = m->decoded.schema->full_name;
		why[0] = '\0';
		if (strcmp(type, SCHEMA_MAPPED) == 0) {
			struct risk_mapped_ev ev;

			err = read_mapped(r, &m->decoded.value, &ev, why, sizeof(why));
			if (!err)
				err = risk_state_apply_mapped(r->state, i, &ev, why, sizeof(why));
		} else if (strcmp(type, SCHEMA_OPENED) == 0) {
			struct risk_opened_ev ev;

			err = read_opened(r, &m->decoded.value, &ev, why, sizeof(why));
			if (!err)
				err = risk_state_apply_opened(r->state, i, &ev, why, sizeof(why));
		} else if (strcmp(type, SCHEMA_SOA) == 0) {
			struct risk_soa_ev ev;

			err = read_soa(r, &m->decoded.value, &ev, why, sizeof(why));
			if (!err)
				err = risk_state_apply_soa(r->state, i, &ev, why, sizeof(why));
		} else if (strcmp(m->topic, r->cfg->consumes[0]) == 0) {
			err = assay_errf(ASSAY_ERR_REJECT, why, sizeof(why),
			                 "unexpected event type: %s", type);
		} else {
			if (r->m_skipped)
				assay_counter_add(r->m_skipped, 1);
			continue; /* audit events assay-risk does not use */
		}
		if (err == ASSAY_ERR_REJECT)
			err = assay_batch_deadletter(batch, i, ASSAY_ERR_REJECT, why);
		if (err) {
			snprintf(errstr, errstr_size, "%s",
			         why[0] ? why : "risk: dead letter failed");
			return ASSAY_ERR_FATAL;
		}
	}
	err = risk_state_finish(r->state, &out, errstr, errstr_size);
	r->out = err ? NULL : out;
	for (size_t i = 0; !err && i < out->nresults; i++)
		err = emit_result(r, batch, out, &out->results[i], now, errstr, errstr_size);
	return err ? ASSAY_ERR_FATAL : 0;
}

static const char *band_text(int band)
{
	return risk_band_symbol(band);
}

static void arr_opt_text(struct assay_strbuf *a, const char *s)
{
	if (s)
		arr_text(a, s);
	else
		arr_null(a);
}

/* Queues one unnest statement with ncols array parameters built in r->cols. */
static void add_stmt(struct risk *r, const char *sql, int ncols)
{
	const char *params[NCOLS];
	char errstr[256];

	for (int i = 0; i < ncols; i++)
		params[i] = arr_done(&r->cols[i]);
	assay_pipeline_add(&r->pipe, sql, ncols, params, errstr, sizeof(errstr));
}

static void cols_reset(struct risk *r, int n)
{
	for (int i = 0; i < n; i++)
		arr_reset(&r->cols[i]);
}

static bool cols_failed(const struct risk *r)
{
	for (int i = 0; i < NCOLS; i++)
		if (r->cols[i].failed)
			return true;
	return false;
}

static const char *const link_symbols[RISK_NLINKS] = {"DIRECT", "AUTOMATIC", "NEEDS_CONFIRMATION"};

/* Orders deltas by (audit, standard, control, source, tier, link kind); any fixed order of
 * the audits will do, so they compare by address. */
static int delta_cmp(const void *pa, const void *pb)
{
	const struct risk_evidence_delta *a = pa, *b = pb;
	uintptr_t x = (uintptr_t)a->audit, y = (uintptr_t)b->audit;

	if (x != y)
		return x < y ? -1 : 1;
	if (a->std != b->std)
		return a->std < b->std ? -1 : 1;
	if (a->pos != b->pos)
		return a->pos < b->pos ? -1 : 1;
	if (a->source != b->source)
		return a->source < b->source ? -1 : 1;
	if (a->tier != b->tier)
		return a->tier < b->tier ? -1 : 1;
	if (a->link != b->link)
		return a->link < b->link ? -1 : 1;
	return 0;
}

/*
 * The batch's evidence deltas (one per item and link) grouped by their key into r->ev[0..*n):
 * the newest day in day, the number of items in r->ev_items. Returns 0 or ASSAY_ERR_FATAL
 * (memory).
 */
static int group_deltas(struct risk *r, const struct risk_batch_out *out, size_t *n)
{
	size_t k = 0;

	if (out->ndeltas > r->cap_ev) {
		struct risk_evidence_delta *ev = realloc(r->ev, out->ndeltas * sizeof(*ev));
		int32_t *items;

		if (ev == NULL)
			return ASSAY_ERR_FATAL;
		r->ev = ev;
		items = realloc(r->ev_items, out->ndeltas * sizeof(*items));
		if (items == NULL)
			return ASSAY_ERR_FATAL;
		r->ev_items = items;
		r->cap_ev = out->ndeltas;
	}
	memcpy(r->ev, out->deltas, out->ndeltas * sizeof(*r->ev));
	qsort(r->ev, out->ndeltas, sizeof(*r->ev), delta_cmp);
	for (size_t i = 0; i < out->ndeltas; i++) {
		if (k > 0 && delta_cmp(&r->ev[k - 1], &r->ev[i]) == 0) {
			if (r->ev[i].day > r->ev[k - 1].day)
				r->ev[k - 1].day = r->ev[i].day;
			r->ev_items[k - 1]++;
			continue;
		}
		r->ev[k] = r->ev[i];
		r->ev_items[k++] = 1;
	}
	*n = k;
	return 0;
}

/* A smallint field of a binary COPY row: 2 bytes, big-endian. */
static void copybin_int16(struct assay_copybin *b, int v)
{
	unsigned char be[2] = {(unsigned char)((unsigned)v >> 8), (unsigned char)v};

	assay_copybin_bytes(b, be, sizeof(be));
}

static void copybin_str(struct assay_copybin *b, const char *s)
{
	assay_copybin_bytes(b, s, strlen(s));
}

/* Appends the grouped deltas r->ev[0..n) to the evidence log with one binary COPY. */
static int write_links(struct risk *r, PGconn *conn, size_t n, char *errstr, size_t errstr_size)
{
	struct assay_copybin *b = &r->copy;
	struct risk_state *s = r->state;
	int err;

	if (n == 0)
		return 0;
	assay_copybin_reset(b);
	for (size_t i = 0; i < n; i++) {
		const struct risk_evidence_delta *d = &r->ev[i];

		assay_copybin_row(b, 8);
		copybin_str(b, d->audit->audit_id);
		copybin_str(b, risk_state_std_symbol(s, d->std));
		copybin_str(b, risk_state_control(s, d->std, d->pos)->id);
		copybin_str(b, risk_state_source_name(s, d->source));
		copybin_int16(b, d->tier);
		copybin_str(b, link_symbols[d->link]);
		assay_copybin_int32(b, d->day);
		assay_copybin_int32(b, r->ev_items[i]);
	}
	err = assay_pg_copy_binary(conn,
	                           "COPY risk_evidence_links (audit_id, standard, control_id, "
	                           "source_system, tier, link_kind, newest_day, items) FROM STDIN "
	                           "(FORMAT binary)",
	                           b, errstr, errstr_size);
	if (!err)
		r->batch_rows = n;
	return err;
}

/*
 * Queues the compaction of the evidence log: every row appended so far is folded into
 * risk_evidence_base (sums and maxima, as the view risk_evidence computes them) and the log
 * is emptied. The ACCESS EXCLUSIVE lock waits for the batches of other instances that
 * appended rows to commit, and keeps out their appends, their compactions and their state
 * reloads (which lock the log before their snapshot) until this batch ends: none of them sees
 * the base without the log or the log twice, and no two compactions write the base at once
 * (so MERGE, which a concurrent insert of the same key would make fail, is safe; it joins
 * the grouped log with the base instead of probing the key index per row, about a third
 * cheaper than INSERT ... ON CONFLICT here). TRUNCATE, not DELETE: no dead rows to vacuum.
 */
static void add_compaction(struct risk *r)
{
	char errstr[256];

	assay_pipeline_add(&r->pipe, "LOCK TABLE risk_evidence_links IN ACCESS EXCLUSIVE MODE", 0,
	                   NULL, errstr, sizeof(errstr));
	assay_pipeline_add(&r->pipe,
	                   "MERGE INTO risk_evidence_base t "
	                   "USING (SELECT audit_id, standard, control_id, source_system, tier, "
	                   "link_kind, max(newest_day) AS newest_day, sum(items) AS items "
	                   "FROM risk_evidence_links GROUP BY audit_id, standard, control_id, "
	                   "source_system, tier, link_kind) v "
	                   "ON t.audit_id = v.audit_id AND t.standard = v.standard "
	                   "AND t.control_id = v.control_id AND t.source_system = v.source_system "
	                   "AND t.tier = v.tier AND t.link_kind = v.link_kind "
	                   "WHEN MATCHED THEN UPDATE SET "
	                   "newest_day = greatest(t.newest_day, v.newest_day), "
	                   "items = t.items + v.items "
	                   "WHEN NOT MATCHED THEN INSERT (audit_id, standard, control_id, "
	                   "source_system, tier, link_kind, newest_day, items) "
	                   "VALUES (v.audit_id, v.standard, v.control_id, v.source_system, v.tier, "
	                   "v.link_kind, v.newest_day, v.items)",
	                   0, NULL, errstr, sizeof(errstr));
	assay_pipeline_add(&r->pipe, "TRUNCATE risk_evidence_links", 0, NULL, errstr,
	                   sizeof(errstr));
}

static int write_rows(struct risk *r, PGconn *conn, char *errstr, size_t errstr_size)
{
	const struct risk_batch_out *out = r->out;
	struct risk_state *s = r->state;
	bool failed = false;
	size_t nev = 0, nrows;
	int err;

	if (out == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk write: no batch");
	r->batch_rows = 0;
	r->batch_compacts = false;
	if (out->ndeltas) {
		err = group_deltas(r, out, &nev);
		if (err)
			return assay_errf(err, errstr, errstr_size, "risk write: out of memory");
		r->batch_compacts = r->log_rows >= r->cfg->compact_rows;
	}
	nrows = out->naudit_rows + out->nsoa_rows + out->nscore_rows + out->nscore_deletes +
	        out->nsummary_rows + out->ndim_rows;
	if (nrows == 0 && !r->batch_compacts)
		return write_links(r, conn, nev, errstr, errstr_size); /* the usual batch */
	err = assay_pipeline_begin(&r->pipe, conn, errstr, errstr_size);
	if (err)
		return err;
	if (r->batch_compacts)
		add_compaction(r);
	if (out->naudit_rows) {
		size_t nai = 0;

		cols_reset(r, 6);
		for (size_t i = 0; i < out->naudit_rows; i++) {
			const struct risk_audit *a = out->audit_rows[i];
			struct joined st = {.len = 0};

			st.buf[0] = '\0';
			for (size_t k = 0; k < risk_state_nstd(s); k++)
				if (a->h.in_scope[k])
					joined_add(&st, risk_state_std_symbol(s, (int)k));
			arr_text(&r->cols[0], a->audit_id);
			arr_text(&r->cols[1], a->h.tenant_id);
			arr_text(&r->cols[2], a->h.client_id);
			arr_bool(&r->cols[3], a->h.opened);
			if (a->h.ref_day == RISK_DAY_NONE)
				arr_null(&r->cols[4]);
			else
				arr_int(&r->cols[4], a->h.ref_day);
			arr_text(&r->cols[5], st.buf);
			nai += a->h.nai;
		}
		failed |= cols_failed(r);
		add_stmt(r,
		         "INSERT INTO risk_audits AS t (audit_id, tenant_id, client_id, opened, "
		         "ref_day, standards) SELECT a, tn, cl, o, d, string_to_array(st, ',') "
		         "FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::int[], "
		         "$6::text[]) AS v(a, tn, cl, o, d, st) "
		         "ON CONFLICT (audit_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, "
		         "client_id = EXCLUDED.client_id, opened = EXCLUDED.opened, "
		         "ref_day = EXCLUDED.ref_day, standards = EXCLUDED.standards, "
		         "updated_at = now()",
		         6);
		cols_reset(r, 1);
		for (size_t i = 0; i < out->naudit_rows; i++)
			arr_text(&r->cols[0], out->audit_rows[i]->audit_id);
		add_stmt(r, "DELETE FROM risk_ai_systems WHERE audit_id = ANY ($1::text[])", 1);
		if (nai) {
			cols_reset(r, 4);
			for (size_t i = 0; i < out->naudit_rows; i++) {
				const struct risk_audit *a = out->audit_rows[i];
				static const char *const tiers[] = {"PROHIBITED", "HIGH_RISK",
				                                    "LIMITED_RISK", "MINIMAL_RISK",
				                                    "NOT_ASSESSED"};

				for (size_t k = 0; k < a->h.nai; k++) {
					arr_text(&r->cols[0], a->audit_id);
					arr_text(&r->cols[1], a->h.ai[k].id);
					arr_text(&r->cols[2], tiers[a->h.ai[k].tier]);
					arr_int(&r->cols[3], a->h.ai[k].roles);
				}
			}
			failed |= cols_failed(r);
			add_stmt(
			        r,
			        "INSERT INTO risk_ai_systems (audit_id, ai_system_id, tier, roles) "
			        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
			        "$4::int[]) "
			        "ON CONFLICT DO NOTHING",
			        4);
		}
	}
	if (out->nsoa_rows) {
		cols_reset(r, 4);
		for (size_t i = 0; i < out->nsoa_rows; i++) {
			const struct risk_row_ref *ref = &out->soa_rows[i];
			const struct risk_audit *a = ref->audit;
			struct joined ex = {.len = 0};

			ex.buf[0] = '\0';
			for (size_t pos = 0;
			     a->h.excluded[ref->std] && pos < risk_state_std_size(s, ref->std);
			     pos++)
				if (a->h.excluded[ref->std][pos])
					joined_add(&ex, risk_state_control(s, ref->std, pos)->id);
			arr_text(&r->cols[0], a->audit_id);
			arr_text(&r->cols[1], risk_state_std_symbol(s, ref->std));
			arr_int(&r->cols[2], a->h.soa_revision[ref->std]);
			arr_text(&r->cols[3], ex.buf);
		}
		failed |= cols_failed(r);
		add_stmt(r,
		         "INSERT INTO risk_soa AS t (audit_id, standard, revision, excluded) "
		         "SELECT a, s, n, string_to_array(x, ',') FROM unnest($1::text[], "
		         "$2::text[], $3::int[], $4::text[]) AS v(a, s, n, x) "
		         "ON CONFLICT (audit_id, standard) DO UPDATE SET revision = "
		         "EXCLUDED.revision, excluded = EXCLUDED.excluded",
		         4);
	}
	if (out->nscore_rows) {
		cols_reset(r, 12);
		for (size_t i = 0; i < out->nscore_rows; i++) {
			const struct risk_row_ref *ref = &out->score_rows[i];
			const struct risk_score *sc = &ref->audit->ctl[ref->std][ref->pos].sc;

			arr_text(&r->cols[0], ref->audit->audit_id);
			arr_text(&r->cols[1], risk_state_std_symbol(s, ref->std));
			arr_text(&r->cols[2], risk_state_control(s, ref->std, ref->pos)->id);
			arr_int(&r->cols[3], sc->likelihood);
			arr_int(&r->cols[4], sc->impact);
			arr_int(&r->cols[5], sc->inherent);
			arr_int(&r->cols[6], sc->coverage);
			arr_int(&r->cols[7], sc->sources);
			if (sc->blocking) {
				arr_null(&r->cols[8]);
				arr_null(&r->cols[9]);
				blocking_reason(ref->audit, r->reason, sizeof(r->reason));
				arr_text(&r->cols[11], r->reason);
			} else {
				arr_int(&r->cols[8], sc->residual);
				arr_opt_text(&r->cols[9], band_text(sc->band));
				arr_null(&r->cols[11]);
			}
			arr_bool(&r->cols[10], sc->blocking);
		}
		failed |= cols_failed(r);
		add_stmt(
		        r,
		        "INSERT INTO risk_scores AS t (audit_id, standard, control_id, likelihood, "
		        "impact, inherent_score, coverage_permille, independent_sources, "
		        "residual_score, band, blocking, blocking_reason) SELECT * FROM "
		        "unnest($1::text[], $2::text[], $3::text[], $4::smallint[], "
		        "$5::smallint[], "
		        "$6::smallint[], $7::smallint[], $8::int[], $9::smallint[], $10::text[], "
		        "$11::bool[], $12::text[]) "
		        "ON CONFLICT (audit_id, standard, control_id) DO UPDATE SET "
		        "likelihood = EXCLUDED.likelihood, impact = EXCLUDED.impact, "
		        "inherent_score = EXCLUDED.inherent_score, "
		        "coverage_permille = EXCLUDED.coverage_permille, "
		        "independent_sources = EXCLUDED.independent_sources, "
		        "residual_score = EXCLUDED.residual_score, band = EXCLUDED.band, "
		        "blocking = EXCLUDED.blocking, blocking_reason = EXCLUDED.blocking_reason, "
		        "updated_at = now()",
		        12);
	}
	if (out->nscore_deletes) {
		cols_reset(r, 3);
		for (size_t i = 0; i < out->nscore_deletes; i++) {
			const struct risk_row_ref *ref = &out->score_deletes[i];

			arr_text(&r->cols[0], ref->audit->audit_id);
			arr_text(&r->cols[1], risk_state_std_symbol(s, ref->std));
			arr_text(&r->cols[2], risk_state_control(s, ref->std, ref->pos)->id);
		}
		failed |= cols_failed(r);
		add_stmt(r,
		         "DELETE FROM risk_scores t USING unnest($1::text[], $2::text[], "
		         "$3::text[]) "
		         "AS v(a, s, c) WHERE t.audit_id = v.a AND t.standard = v.s AND "
		         "t.control_id = v.c",
		         3);
	}
	if (out->nsummary_rows) {
		cols_reset(r, 12);
		for (size_t i = 0; i < out->nsummary_rows; i++) {
			const struct risk_row_ref *ref = &out->summary_rows[i];
			const struct risk_summary *sum = &ref->audit->h.last[ref->std];
			struct joined tc = {.len = 0}, ts = {.len = 0};

			tc.buf[0] = ts.buf[0] = '\0';
			for (int k = 0; k < sum->ntop; k++) {
				char num[16];

				snprintf(num, sizeof(num), "%d", sum->top[k].residual);
				joined_add(&tc, sum->top[k].control_id);
				joined_add(&ts, num);
			}
			arr_text(&r->cols[0], ref->audit->audit_id);
			arr_text(&r->cols[1], risk_state_std_symbol(s, ref->std));
			arr_int(&r->cols[2], sum->applicable);
			arr_int(&r->cols[3], sum->with_evidence);
			for (int b = 0; b < RISK_NBANDS; b++)
				arr_int(&r->cols[4 + b], sum->bands[b]);
			arr_int(&r->cols[9], sum->blocking);
			arr_text(&r->cols[10], tc.buf);
			arr_text(&r->cols[11], ts.buf);
		}
		failed |= cols_failed(r);
		add_stmt(
		        r,
		        "INSERT INTO risk_summaries AS t (audit_id, standard, applicable_controls, "
		        "controls_with_evidence, very_low, low, medium, high, critical, blocking, "
		        "top_controls, top_scores) SELECT a, s, ap, we, vl, lo, me, hi, cr, bl, "
		        "string_to_array(tc, ','), string_to_array(ts, ',')::int[] FROM "
		        "unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::int[], "
		        "$6::int[], "
		        "$7::int[], $8::int[], $9::int[], $10::int[], $11::text[], $12::text[]) "
		        "AS v(a, s, ap, we, vl, lo, me, hi, cr, bl, tc, ts) "
		        "ON CONFLICT (audit_id, standard) DO UPDATE SET "
		        "applicable_controls = EXCLUDED.applicable_controls, "
		        "controls_with_evidence = EXCLUDED.controls_with_evidence, "
		        "very_low = EXCLUDED.very_low, low = EXCLUDED.low, medium = "
		        "EXCLUDED.medium, "
		        "high = EXCLUDED.high, critical = EXCLUDED.critical, "
		        "blocking = EXCLUDED.blocking, top_controls = EXCLUDED.top_controls, "
		        "top_scores = EXCLUDED.top_scores, updated_at = now()",
		        12);
	}
	if (out->ndim_rows) {
		cols_reset(r, 5);
		for (size_t i = 0; i < out->ndim_rows; i++) {
			const struct risk_audit *a = out->dim_rows[i];

			for (int d = 0; d < RISK_NDIMS; d++) {
				arr_text(&r->cols[0], a->audit_id);
				arr_text(&r->cols[1], risk_dim_symbol(d));
				arr_int(&r->cols[2], a->h.dims[d].controls);
				if (a->h.dims[d].residual > 0)
					arr_int(&r->cols[3], a->h.dims[d].residual);
				else
					arr_null(&r->cols[3]);
				arr_opt_text(&r->cols[4], band_text(a->h.dims[d].band));
			}
		}
		failed |= cols_failed(r);
		add_stmt(r,
		         "INSERT INTO risk_dimensions AS t (audit_id, dimension, controls, "
		         "residual_score, band) SELECT * FROM unnest($1::text[], $2::text[], "
		         "$3::int[], $4::smallint[], $5::text[]) "
		         "ON CONFLICT (audit_id, dimension) DO UPDATE SET controls = "
		         "EXCLUDED.controls, "
		         "residual_score = EXCLUDED.residual_score, band = EXCLUDED.band, "
		         "updated_at = now()",
		         5);
	}
	err = assay_pipeline_end(&r->pipe, errstr, errstr_size);
	if (!err && failed)
		err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk write: out of memory");
	if (!err)
		err = write_links(r, conn, nev, errstr, errstr_size);
	return err;
}

static double mono_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int risk_write(void *ctx, PGconn *conn, struct assay_batch *batch, char *errstr,
                      size_t errstr_size)
{
	struct risk *r = ctx;
	double t0 = mono_seconds();
	int err;

	(void)batch;
	err = write_rows(r, conn, errstr, errstr_size);
	if (err)
		return err;
	if (r->m_write)
		assay_histogram_observe(r->m_write, mono_seconds() - t0);
	if (r->m_recomputed)
		assay_counter_add(r->m_recomputed, r->out->recomputed);
	if (r->m_published)
		assay_counter_add(r->m_published, r->out->nresults);
	return 0;
}

static void risk_committed(void *ctx, struct assay_batch *batch)
{
	struct risk *r = ctx;

	(void)batch;
	r->out = NULL;
	risk_state_commit(r->state);
	r->log_rows = (r->batch_compacts ? 0 : r->log_rows) + (long long)r->batch_rows;
	r->batch_rows = 0;
	r->batch_compacts = false;
}

static void risk_rolled_back(void *ctx, struct assay_batch *batch)
{
	struct risk *r = ctx;

	(void)batch;
	r->out = NULL;
	risk_state_rollback(r->state);
	r->batch_rows = 0;
	r->batch_compacts = false;
}

/* ---- start-up ---- */

/* Splits a comma-joined list in place into out (at most cap entries). */
static size_t split(char *s, const char **out, size_t cap)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return 0;
	for (char *p = s; n < cap; p++) {
		char *comma = strchr(p, ',');

		out[n++] = p;
		if (comma == NULL)
			break;
		*comma = '\0';
		p = comma;
	}
	return n;
}

static int query(PGconn *conn, const char *sql, PGresult **res, char *errstr, size_t errstr_size)
{
	return assay_pg_query(conn, sql, 0, NULL, res, errstr, errstr_size);
}

static int band_parse(const char *s)
{
	for (int b = 0; b < RISK_NBANDS; b++)
		if (strcmp(risk_band_symbol(b), s) == 0)
			return b;
	return RISK_BAND_NONE;
}

static int load_model(struct risk *r, PGconn *conn, struct risk_state **out, char *errstr,
                      size_t errstr_size)
{
	PGresult *themes = NULL, *tags = NULL;
	struct risk_theme_row *th = NULL;
	struct risk_tag_row *tg = NULL;
	int err;

	err = query(conn, "SELECT standard, grp, likelihood, impact FROM risk_theme_defaults",
	            &themes, errstr, errstr_size);
	if (!err)
		err = query(conn, "SELECT standard, control_id, dimension FROM risk_dimension_tags",
		            &tags, errstr, errstr_size);
	if (err)
		goto out;
	th = calloc((size_t)PQntuples(themes) + 1, sizeof(*th));
	tg = calloc((size_t)PQntuples(tags) + 1, sizeof(*tg));
	if (th == NULL || tg == NULL) {
		err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk init: out of memory");
		goto out;
	}
	for (int i = 0; i < PQntuples(themes); i++) {
		th[i].standard = PQgetvalue(themes, i, 0);
		th[i].group = PQgetvalue(themes, i, 1);
		th[i].likelihood = (int)strtol(PQgetvalue(themes, i, 2), NULL, 10);
		th[i].impact = (int)strtol(PQgetvalue(themes, i, 3), NULL, 10);
	}
	for (int i = 0; i < PQntuples(tags); i++) {
		tg[i].standard = PQgetvalue(tags, i, 0);
		tg[i].control_id = PQgetvalue(tags, i, 1);
		tg[i].dimension = PQgetvalue(tags, i, 2);
	}
	err = risk_state_new(r->cat, &r->params, th, (size_t)PQntuples(themes), tg,
	                     (size_t)PQntuples(tags), out, errstr, errstr_size);
out:
	free(th);
	free(tg);
	PQclear(themes);
	PQclear(tags);
	return err;
}

static int geti(const PGresult *res, int row, int col)
{
	return (int)strtol(PQgetvalue(res, row, col), NULL, 10);
}

/* Audits with their AI systems (both ordered by audit id, merged). */
static int load_audits(struct risk_state *st, PGconn *conn, char *errstr, size_t errstr_size)
{
	PGresult *au = NULL, *ai = NULL;
	struct risk_ai_system *sys = NULL;
	int err, k = 0;

	err = query(
	        conn,
	        "SELECT audit_id, tenant_id, client_id, opened, coalesce(ref_day, -2147483648), "
	        "array_to_string(standards, ',') FROM risk_audits ORDER BY audit_id",
	        &au, errstr, errstr_size);
	if (!err)
		err = query(conn,
		            "SELECT audit_id, ai_system_id, tier, roles FROM risk_ai_systems "
		            "ORDER BY audit_id, ai_system_id",
		            &ai, errstr, errstr_size);
	if (err)
		goto out;
	sys = calloc((size_t)PQntuples(ai) + 1, sizeof(*sys));
	if (sys == NULL)
		goto nomem;
	for (int i = 0; i < PQntuples(au); i++) {
		const char *id = PQgetvalue(au, i, 0), *stds[RISK_MAX_STD * 2];
		char *joined = strdup(PQgetvalue(au, i, 5));
		size_t nstd, nai = 0;

		if (joined == NULL)
			goto nomem;
		nstd = split(joined, stds, RISK_MAX_STD * 2);
		while (k < PQntuples(ai) && strcmp(PQgetvalue(ai, k, 0), id) < 0)
			k++;
		for (; k < PQntuples(ai) && strcmp(PQgetvalue(ai, k, 0), id) == 0; k++) {
			sys[nai].id = PQgetvalue(ai, k, 1);
			sys[nai].tier = risk_ai_tier_parse(PQgetvalue(ai, k, 2));
			if (sys[nai].tier < 0)
				sys[nai].tier = RISK_AI_NOT_ASSESSED;
			sys[nai++].roles = (unsigned)geti(ai, k, 3);
		}
		err = risk_state_load_audit(st, id, PQgetvalue(au, i, 1), PQgetvalue(au, i, 2),
		                            strcmp(PQgetvalue(au, i, 3), "t") == 0,
		                            (int32_t)strtol(PQgetvalue(au, i, 4), NULL, 10), stds,
		                            nstd, sys, nai);
		free(joined);
		if (err)
			goto nomem;
	}
	goto out;
nomem:
	err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk init: out of memory");
out:
	free(sys);
	PQclear(au);
	PQclear(ai);
	return err;
}

static int load_state(struct risk *r, struct risk_state *st, PGconn *conn, char *errstr,
                      size_t errstr_size)
{
	PGresult *res = NULL;
	int err;

	err = load_audits(st, conn, errstr, errstr_size);
	if (err)
		return err;
	/* SoAs */
	err = query(conn,
	            "SELECT audit_id, standard, revision, array_to_string(excluded, ',') "
	            "FROM risk_soa",
	            &res, errstr, errstr_size);
	if (err)
		return err;
	for (int i = 0; !err && i < PQntuples(res); i++) {
		char *ex = strdup(PQgetvalue(res, i, 3));
		size_t cap = ex ? strlen(ex) / 2 + 1 : 0, n;
		const char **ids = calloc(cap + 1, sizeof(*ids));

		if (ex == NULL || ids == NULL) {
			free(ex);
			free(ids);
			err = ASSAY_ERR_FATAL;
			break;
		}
		n = split(ex, ids, cap);
		err = risk_state_load_soa(st, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		                          geti(res, i, 2), ids, n);
		free(ex);
		free(ids);
	}
	PQclear(res);
	if (err)
		goto nomem;
	/* evidence aggregates: the view groups the compacted base and the log */
	err = query(conn,
	            "SELECT audit_id, standard, control_id, source_system, tier, link_kind, "
	            "newest_day, items FROM risk_evidence",
	            &res, errstr, errstr_size);
	if (err)
		return err;
	for (int i = 0; !err && i < PQntuples(res); i++)
		err = risk_state_load_evidence(
		        st, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
		        PQgetvalue(res, i, 3), geti(res, i, 4),
		        risk_link_parse(PQgetvalue(res, i, 5)), geti(res, i, 6), geti(res, i, 7));
	PQclear(res);
	if (err)
		goto nomem;
	/* scores */
	err = query(conn,
	            "SELECT audit_id, standard, control_id, likelihood, impact, inherent_score, "
	            "coverage_permille, 0, 0, 0, "
	            "independent_sources, coalesce(residual_score, 0), coalesce(band, ''), "
	            "blocking FROM risk_scores",
	            &res, errstr, errstr_size);
	if (err)
		return err;
	for (int i = 0; !err && i < PQntuples(res); i++) {
		struct risk_score sc;

		memset(&sc, 0, sizeof(sc));
		sc.likelihood = geti(res, i, 3);
		sc.impact = geti(res, i, 4);
		sc.inherent = geti(res, i, 5);
		sc.coverage = geti(res, i, 6);
		sc.links[RISK_LINK_DIRECT] = geti(res, i, 7);
		sc.links[RISK_LINK_AUTOMATIC] = geti(res, i, 8);
		sc.links[RISK_LINK_PENDING] = geti(res, i, 9);
		sc.sources = geti(res, i, 10);
		sc.residual = geti(res, i, 11);
		sc.band = band_parse(PQgetvalue(res, i, 12));
		sc.blocking = strcmp(PQgetvalue(res, i, 13), "t") == 0;
		err = risk_state_load_score(st, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		                            PQgetvalue(res, i, 2), &sc);
	}
	PQclear(res);
	if (err)
		goto nomem;
	/* summaries */
	err = query(conn,
	            "SELECT audit_id, standard, applicable_controls, controls_with_evidence, "
	            "very_low, low, medium, high, critical, blocking, "
	            "array_to_string(top_controls, ','), array_to_string(top_scores, ',') "
	            "FROM risk_summaries",
	            &res, errstr, errstr_size);
	if (err)
		return err;
	for (int i = 0; !err && i < PQntuples(res); i++) {
		struct risk_summary sum;
		char tc[4096], ts[1024];
		const char *ids[RISK_TOP_MAX], *scores[RISK_TOP_MAX];
		size_t n;

		memset(&sum, 0, sizeof(sum));
		sum.applicable = geti(res, i, 2);
		sum.with_evidence = geti(res, i, 3);
		for (int b = 0; b < RISK_NBANDS; b++)
			sum.bands[b] = geti(res, i, 4 + b);
		sum.blocking = geti(res, i, 9);
		snprintf(tc, sizeof(tc), "%s", PQgetvalue(res, i, 10));
		snprintf(ts, sizeof(ts), "%s", PQgetvalue(res, i, 11));
		n = split(tc, ids, RISK_TOP_MAX);
		if (split(ts, scores, RISK_TOP_MAX) != n)
			n = 0;
		for (size_t k = 0; k < n; k++) {
			sum.top[k].control_id = ids[k];
			sum.top[k].residual = (int)strtol(scores[k], NULL, 10);
			sum.top[k].band = risk_band_of(&r->params, sum.top[k].residual);
		}
		sum.ntop = (int)n;
		err = risk_state_load_summary(st, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		                              &sum);
	}
	PQclear(res);
	if (err)
		goto nomem;
	/* dimensions */
	err = query(conn,
	            "SELECT audit_id, dimension, controls, coalesce(residual_score, 0) "
	            "FROM risk_dimensions",
	            &res, errstr, errstr_size);
	if (err)
		return err;
	for (int i = 0; !err && i < PQntuples(res); i++) {
		struct risk_dim_score d;

		d.controls = geti(res, i, 2);
		d.residual = geti(res, i, 3);
		d.band = risk_band_of(&r->params, d.residual);
		err = risk_state_load_dim(st, PQgetvalue(res, i, 0),
		                          risk_dim_parse(PQgetvalue(res, i, 1)), &d);
	}
	PQclear(res);
	if (err)
		goto nomem;
	return 0;
nomem:
	return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "risk init: out of memory");
}

/*
 * Reads the model tables and the stored state into a new state in one read-only snapshot
 * (its own REPEATABLE READ transaction when conn is idle) and, on success only, replaces
 * r->state with it, freeing the old one; on failure r->state is left as it was. The model
 * rows are cheap to read and the state is built over them, so they are read again too.
 * The evidence comes from the view risk_evidence (the compacted base and the log, grouped);
 * the size of the log decides when this instance's next batch compacts it.
 */
static int reload(struct risk *r, PGconn *conn, char *errstr, size_t errstr_size)
{
	struct risk_state *st = NULL;
	PGresult *res = NULL;
	long long log_rows = 0;
	bool own = false;
	int err = 0;

	err = assay_pg_snapshot_begin(conn, &own, errstr, errstr_size);
	/* before the snapshot is taken (the first query): a compaction that empties the log
	 * either committed before it or waits until this transaction ends */
	if (!err)
		err = assay_pg_exec(conn, "LOCK TABLE risk_evidence_links IN ACCESS SHARE MODE",
		                    errstr, errstr_size);
	if (!err)
		err = load_model(r, conn, &st, errstr, errstr_size);
	if (!err)
		err = load_state(r, st, conn, errstr, errstr_size);
	if (!err)
		err = query(conn, "SELECT count(*) FROM risk_evidence_links", &res, errstr,
		            errstr_size);
	if (!err)
		log_rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	err = assay_pg_snapshot_end(conn, own, err, errstr, errstr_size);
	if (err) {
		risk_state_destroy(st);
		return err;
	}
	risk_state_destroy(r->state);
	r->state = st;
	r->out = NULL;
	r->log_rows = log_rows;
	return 0;
}

/*
 * After every assignment (and after a fenced batch): another instance may have written the
 * risk tables while it owned these partitions, so the whole state is read again and replaces
 * the one in memory. The catalog stays as init loaded it.
 */
static int risk_assigned(void *ctx, PGconn *conn, const rd_kafka_topic_partition_list_t *partitions,
                         char *errstr, size_t errstr_size)
{
	struct risk *r = ctx;
	int err;

	(void)partitions;
	err = reload(r, conn, errstr, errstr_size);
	if (err == 0)
		assay_log_info(r->log, "risk state reloaded",
		               ASSAY_LF_INT("audits", (long long)risk_state_naudits(r->state)));
	return err;
}

static int risk_init(void *ctx, const struct assay_service_env *env, char *errstr,
                     size_t errstr_size)
{
	struct risk *r = ctx;
	int err;

	/* init may be retried after a transient failure: start clean */
	risk_fini(r);
	risk_state_destroy(r->state);
	r->state = NULL;
	assay_catalog_destroy(r->cat);
	r->cat = NULL;

	r->log = env->log;
	risk_config_params(r->cfg, &r->params);
	err = risk_params_check(&r->params, errstr, errstr_size);
	if (!err)
		err = assay_catalog_load(env->conn, &r->cat, errstr, errstr_size);
	if (!err)
		err = reload(r, env->conn, errstr, errstr_size);
	if (!err)
		err = assay_codec_schema_by_name(env->codec, SCHEMA_SCORED, &r->s_scored, errstr,
		                                 errstr_size);
	if (!err) {
		err = assay_codec_value_new(r->s_scored, &r->v_scored);
		r->have_value = err == 0;
	}
	if (err)
		return err;
	r->m_published = assay_metrics_counter(env->metrics, "assay_risk_scored_events_total",
	                                       "RiskScored events published", NULL);
	r->m_recomputed =
	        assay_metrics_counter(env->metrics, "assay_risk_controls_recomputed_total",
	                              "control scores recomputed", NULL);
	r->m_skipped = assay_metrics_counter(env->metrics, "assay_risk_skipped_events_total",
	                                     "audit events assay-risk does not use", NULL);
	{
		static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
		                                0.05,  0.1,    0.25,  0.5,  1};

		r->m_write = assay_metrics_histogram(env->metrics, "assay_risk_write_seconds",
		                                     "time of assay-risk's own statements in a "
		                                     "batch (within assay_batch_seconds)",
		                                     bounds, sizeof(bounds) / sizeof(bounds[0]));
	}
	assay_log_info(env->log, "risk state loaded",
	               ASSAY_LF_INT("audits", (long long)risk_state_naudits(r->state)));
	return 0;
}

/* The settings, filled by the configuration load before init runs (the one object the
 * static descriptor can point at) */
static struct risk_config risk_cfg;

static void *risk_create(void *cfg)
{
	return risk_new(cfg);
}

static void risk_free(void *ctx)
{
	risk_destroy(ctx);
}

const struct assay_service_def risk_service = {
        .name = "assay-risk",
        .description = "coverage and residual risk per control, standard and audit",
        .consumes = (const char *const *)risk_cfg.consumes,
        .nconsumes = 2,
        .produces = (const char *const *)risk_cfg.produces,
        .nproduces = 1,
        .metrics_port = METRICS_PORT,
        .settings = risk_settings,
        .settings_target = &risk_cfg,
        .handler =
                {
                        .stage = "risk",
                        .decode = true,
                        .handle = risk_handle,
                        .write = risk_write,
                        .committed = risk_committed,
                        .rolled_back = risk_rolled_back,
                        .assigned = risk_assigned,
                },
        .init = risk_init,
        .fini = risk_fini,
        .create = risk_create,
        .destroy = risk_free,
};
