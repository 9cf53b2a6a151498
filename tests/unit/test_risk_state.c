/*
 * assay-risk's in-memory state (services/risk/risk_state.h) over a small catalog: scoring
 * starts when the audit opens, a batch recomputes and reports only what it touched, nothing
 * is reported when nothing changed, a rollback restores the state exactly, the SoA removes
 * controls, a prohibited AI practice blocks the 42001 controls, the reference day moves with
 * the events (never the wall clock), and the final scores do not depend on how the events
 * were split into batches or interleaved across the two topics.
 */
#include "assay_test.h"
#include "assay_catalog.h"
#include "assay_err.h"
#include "risk_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS 86400000LL
#define T0     (20000 * DAY_MS) /* a day far from the epoch */

static struct assay_catalog *catalog(void)
{
	static const struct assay_standard_def stds[] = {
	        {"ISO27001_2022", "ISO27001", 2022, 19000, false, 0},
	        {"ISO42001_2023", "ISO42001", 2023, 19700, false, 0},
	};
	static const struct assay_control ctls[] = {
	        {"ISO27001_2022", "6.1.2", "Information security risk assessment", "", false},
	        {"ISO27001_2022", "A.5.1", "Policies for information security", "A.5 Org", true},
	        {"ISO27001_2022", "A.8.8", "Management of technical vulnerabilities", "A.8 Tech",
	         true},
	        {"ISO27001_2022", "A.8.15", "Logging", "A.8 Tech", true},
	        {"ISO42001_2023", "6.1.2", "AI risk assessment", "", false},
	        {"ISO42001_2023", "A.7.4", "Quality of data for AI systems", "A.7 Data", true},
	        {"ISO42001_2023", "A.9.2", "Processes for responsible use", "A.9 Use", true},
	};
	struct assay_catalog *c = NULL;
	char err[256];

	assert_int_equal(assay_catalog_new(stds, 2, ctls, sizeof(ctls) / sizeof(ctls[0]), &c, err,
	                                   sizeof(err)),
	                 0);
	return c;
}

struct fixture {
	struct assay_catalog *cat;
	struct risk_state *s;
};

static struct risk_state *state_new(struct assay_catalog *cat)
{
	static const struct risk_theme_row themes[] = {
	        {"ISO27001_2022", "A.8", 4, 4},
	        {"ISO27001_2022", "6", 3, 4},
	        {"ISO42001_2023", "A.7", 4, 4},
	};
	static const struct risk_tag_row tags[] = {
	        {"ISO42001_2023", "A.7.4", "BIAS_FAIRNESS"},
	        {"ISO42001_2023", "A.7.4", "DATA_QUALITY_PROVENANCE"},
	        {"ISO42001_2023", "A.9.2", "HUMAN_OVERSIGHT"},
	        {"ISO42001_2023", "A.99.1", "SAFETY"}, /* unknown control: ignored */
	};
	struct risk_params p;
	struct risk_state *s = NULL;
	char err[256];

	risk_params_default(&p);
	assert_int_equal(risk_state_new(cat, &p, themes, 3, tags, 4, &s, err, sizeof(err)), 0);
	return s;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->cat = catalog();
	f->s = state_new(f->cat);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	risk_state_destroy(f->s);
	assay_catalog_destroy(f->cat);
	free(f);
	return 0;
}

/* ---- events ---- */

static const char *const both[] = {"ISO27001_2022", "ISO42001_2023"};

static void opened(struct risk_state *s, size_t msg, const char *audit, int64_t at,
                   const struct risk_ai_system *ai, size_t nai)
{
	struct risk_opened_ev ev = {audit, "cb-1", "client-1", at, both, 2, ai, nai};
	char err[256];

	assert_int_equal(risk_state_apply_opened(s, msg, &ev, err, sizeof(err)), 0);
}

static void soa(struct risk_state *s, size_t msg, const char *audit, int64_t at, int revision,
                const char *excluded)
{
	const char *ex[] = {excluded};
	struct risk_soa_ev ev = {audit,           "cb-1",   "client-1", at,
	                         "ISO27001_2022", revision, ex,         excluded ? 1 : 0};
	char err[256];

	assert_int_equal(risk_state_apply_soa(s, msg, &ev, err, sizeof(err)), 0);
}

static void mapped(struct risk_state *s, size_t msg, const char *audit, int64_t at,
                   const char *source, const char *kind, int64_t collected, const char *standard,
                   const char *control, int link)
{
	struct risk_link_ev l = {standard, control, link};
	struct risk_mapped_ev ev = {audit, "cb-1", "client-1", at, source, kind, collected, &l, 1};
	char err[256];

	assert_int_equal(risk_state_apply_mapped(s, msg, &ev, err, sizeof(err)), 0);
}

static const struct risk_batch_out *finish(struct risk_state *s)
{
	const struct risk_batch_out *out = NULL;
	char err[256];

	assert_int_equal(risk_state_finish(s, &out, err, sizeof(err)), 0);
	return out;
}

static const struct risk_ctl *ctl(struct risk_state *s, const char *audit, const char *standard,
                                  const char *id)
{
	const struct risk_audit *a = risk_state_find(s, audit);
	int k = risk_state_std_index(s, standard);
	int pos = risk_state_position(s, k, id);

	assert_non_null(a);
	assert_true(k >= 0 && pos >= 0);
	return &a->ctl[k][pos];
}

static const struct risk_result *result_for(const struct risk_batch_out *out, struct risk_state *s,
                                            const char *standard)
{
	for (size_t i = 0; i < out->nresults; i++)
		if (strcmp(risk_state_std_symbol(s, out->results[i].std), standard) == 0)
			return &out->results[i];
	return NULL;
}

/* ---- tests ---- */

static void test_scoring_starts_when_the_audit_opens(void **state)
{
	struct fixture *f = *state;
	const struct risk_batch_out *out;
	const struct risk_result *r27, *r42;

	/* evidence first (the topics are not ordered against each other) */
	risk_state_begin(f->s);
	mapped(f->s, 0, "au-1", T0, "scanner", "CONFIGURATION_SCAN", T0, "ISO27001_2022", "A.8.8",
	       RISK_LINK_DIRECT);
	out = finish(f->s);
	assert_int_equal(out->nresults, 0);
	assert_int_equal(out->nscore_rows, 0);
	assert_int_equal(out->ndeltas, 1);
	risk_state_commit(f->s);

	risk_state_begin(f->s);
	opened(f->s, 0, "au-1", T0, NULL, 0);
	out = finish(f->s);
	assert_int_equal(out->nresults, 2);
	r27 = result_for(out, f->s, "ISO27001_2022");
	r42 = result_for(out, f->s, "ISO42001_2023");
	assert_non_null(r27);
	assert_non_null(r42);
	assert_int_equal(r27->nchanges, 4); /* every applicable control, first time */
	assert_int_equal(r42->nchanges, 3);
	assert_false(r27->with_dims);
	assert_true(r42->with_dims);
	for (size_t i = 0; i < r27->nchanges; i++)
		assert_false(out->changes[r27->first_change + i].had_prev);
	assert_int_equal(r27->summary.applicable, 4);
	assert_int_equal(r27->summary.with_evidence, 1);
	/* A.8.8 (4x4 = 16) with one fresh scan: 16 * (1 - 0.56) = 7 */
	assert_int_equal(ctl(f->s, "au-1", "ISO27001_2022", "A.8.8")->sc.residual, 7);
	assert_int_equal(ctl(f->s, "au-1", "ISO27001_2022", "A.8.15")->sc.residual, 16);
	assert_string_equal(r27->summary.top[0].control_id, "A.8.15");
	/* dimensions: A.7.4 (16) tags BIAS and DATA; A.9.2 (9) HUMAN_OVERSIGHT */
	assert_int_equal(r42->dims[0].controls, 1);
	assert_int_equal(r42->dims[0].residual, 16);
	assert_int_equal(r42->dims[2].residual, 9);
	assert_int_equal(r42->dims[5].controls, 0);
	assert_int_equal(r42->dims[5].residual, 0);
	assert_false(r42->prev_dims_valid);
	risk_state_commit(f->s);
}

static void open_and_commit(struct risk_state *s, const char *audit,
                            const struct risk_ai_system *ai, size_t nai)
{
	risk_state_begin(s);
	opened(s, 0, audit, T0, ai, nai);
	finish(s);
	risk_state_commit(s);
}

static void test_batch_recomputes_only_what_it_touches(void **state)
{
	struct fixture *f = *state;
	const struct risk_batch_out *out;
	const struct risk_change *c;

	open_and_commit(f->s, "au-2", NULL, 0);
	risk_state_begin(f->s);
	mapped(f->s, 3, "au-2", T0, "scanner", "CONFIGURATION_SCAN", T0, "ISO27001_2022", "A.8.15",
	       RISK_LINK_DIRECT);
	out = finish(f->s);
	assert_int_equal(out->recomputed, 1);
	assert_int_equal(out->nresults, 1);
	assert_int_equal(out->results[0].msg, 3);
	assert_int_equal(out->results[0].nchanges, 1);
	c = &out->changes[out->results[0].first_change];
	assert_string_equal(risk_state_control(f->s, c->std, c->pos)->id, "A.8.15");
	assert_true(c->had_prev);
	assert_int_equal(c->prev_residual, 16);
	assert_int_equal(c->prev_band, RISK_BAND_HIGH);
	assert_int_equal(c->now.residual, 7);
	assert_int_equal(c->now.band, RISK_BAND_LOW);
	assert_int_equal(out->nscore_rows, 1);
	risk_state_commit(f->s);

	/* a second item from the same source with the same strength changes counts, not the
	 * score: only the evidence aggregate is written, nothing is published */
	risk_state_begin(f->s);
	mapped(f->s, 0, "au-2", T0, "scanner", "TEST_REPORT", T0, "ISO27001_2022", "A.8.15",
	       RISK_LINK_DIRECT);
	out = finish(f->s);
	assert_int_equal(out->nresults, 0);
	assert_int_equal(out->nscore_rows, 0);
	assert_int_equal(out->ndeltas, 1);
	assert_int_equal(ctl(f->s, "au-2", "ISO27001_2022", "A.8.15")->ev.links[RISK_LINK_DIRECT],
	                 2);
	risk_state_commit(f->s);

	/* a pending link counts for nothing: only the pending count moves */
	risk_state_begin(f->s);
	mapped(f->s, 0, "au-2", T0, "grc", "CONFIGURATION_SCAN", T0, "ISO27001_2022", "A.5.1",
	       RISK_LINK_PENDING);
	out = finish(f->s);
	assert_int_equal(out->nresults, 0);
	assert_int_equal(ctl(f->s, "au-2", "ISO27001_2022", "A.5.1")->sc.coverage, 0);
	assert_int_equal(ctl(f->s, "au-2", "ISO27001_2022", "A.5.1")->ev.links[RISK_LINK_PENDING],
	                 1);
	assert_int_equal(out->nscore_rows, 0);
	risk_state_commit(f->s);

	/* a batch with nothing for known controls yields nothing */
	risk_state_begin(f->s);
	mapped(f->s, 0, "au-2", T0, "scanner", "POLICY", T0, "ISO27001_2022", "A.99.99",
	       RISK_LINK_DIRECT);
	out = finish(f->s);
	assert_int_equal(out->nresults, 0);
	assert_int_equal(out->nscore_rows, 0);
	assert_int_equal(out->ndeltas, 0);
	risk_state_commit(f->s);
}

static void test_rollback_restores_state(void **state)
{
	struct fixture *f = *state;
	const struct risk_batch_out *out;
	struct risk_score before;

	open_and_commit(f->s, "au-3", NULL, 0);
	before = ctl(f->s, "au-3", "ISO27001_2022", "A.8.8")->sc;
	risk_state_begin(f->s);
	mapped(f->s, 0, "au-3", T0, "scanner", "CONFIGURATION_SCAN", T0, "ISO27001_2022", "A.8.8",
	       RISK_LINK_DIRECT);
	opened(f->s, 1, "au-new", T0, NULL, 0);
	out = finish(f->s);
	assert_int_equal(out->nresults, 3);
	risk_state_rollback(f->s);
	assert_null(risk_state_find(f->s, "au-new"));
	assert_int_equal(ctl(f->s, "au-3", "ISO27001_2022", "A.8.8")->sc.residual, before.residual);
	assert_int_equal(ctl(f->s, "au-3", "ISO27001_2022", "A.8.8")->ev.nsources, 0);
	assert_int_equal(ctl(f->s, "au-3", "ISO27001_2022", "A.8.8")->ev.links[0], 0);

	/* the same batch again (begin without commit/rollback also rolls back first) */
	risk_state_begin(f->s);
	mapped(f->s, 0, "au-3", T0, "scanner", "CONFIGURATION_SCAN", T0, "ISO27001_2022", "A.8.8",
	       RISK_LINK_DIRECT);
	finish(f->s);
	risk_state_begin(f->s);
	mapped(f->s, 0, "au-3", T0, "scanner", "CONFIGURATION_SCAN", T0, "ISO27001_2022", "A.8.8",
	       RISK_LINK_DIRECT);
	out = finish(f->s);
	assert_int_equal(out->nresults, 1);
	assert_int_equal(out->changes[0].prev_residual, 16);
	risk_state_commit(f->s);
	assert_int_equal(ctl(f->s, "au-3", "ISO27001_2022", "A.8.8")->ev.links[0], 1);
	assert_int_equal(ctl(f->s, "au-3", "ISO27001_2022", "A.8.8")->sc.residual, 7);
}

static void test_soa_excludes_controls(void **state)
{
	struct fixture *f = *state;
	const struct risk_batch_out *out;
	const struct risk_result *r;

	open_and_commit(f->s, "au-4", NULL, 0);
	risk_state_begin(f->s);
	soa(f->s, 0, "au-4", T0, 1, "A.5.1");
	out = finish(f->s);
	assert_int_equal(out->nscore_deletes, 1);
	assert_int_equal(out->nsoa_rows, 1);
	r = result_for(out, f->s, "ISO27001_2022");
	assert_non_null(r);
	assert_int_equal(r->summary.applicable, 3);
	assert_false(ctl(f->s, "au-4", "ISO27001_2022", "A.5.1")->scored);
	risk_state_commit(f->s);
	/* an older revision changes nothing; a clause can never be excluded */
	risk_state_begin(f->s);
	soa(f->s, 0, "au-4", T0, 1, "A.8.8");
	soa(f->s, 1, "au-4", T0, 2, "6.1.2");
	out = finish(f->s);
	r = result_for(out, f->s, "ISO27001_2022");
	assert_non_null(r);
	assert_int_equal(r->summary.applicable, 4);
	assert_true(ctl(f->s, "au-4", "ISO27001_2022", "A.5.1")->scored);
	risk_state_commit(f->s);
}

static void test_prohibited_practice_blocks_42001_only(void **state)
{
	struct fixture *f = *state;
	static const struct risk_ai_system ai[] = {
	        {"social-scoring", RISK_AI_PROHIBITED, RISK_ROLE_PROVIDER},
	        {"cv-screening", RISK_AI_HIGH_RISK, RISK_ROLE_USER},
	};
	const struct risk_batch_out *out;
	const struct risk_result *r42, *r27;

	risk_state_begin(f->s);
	opened(f->s, 0, "au-5", T0, ai, 2);
	out = finish(f->s);
	r42 = result_for(out, f->s, "ISO42001_2023");
	r27 = result_for(out, f->s, "ISO27001_2022");
	assert_int_equal(r42->summary.blocking, 3);
	assert_int_equal(r42->summary.ntop, 0);
	assert_int_equal(r27->summary.blocking, 0);
	for (size_t i = 0; i < r42->nchanges; i++) {
		const struct risk_change *c = &out->changes[r42->first_change + i];

		assert_true(c->now.blocking);
		assert_int_equal(c->now.residual, 0);
		assert_int_equal(c->now.band, RISK_BAND_NONE);
		assert_true(c->now.impact >= 4); /* the high-risk floor still shows */
	}
	for (int d = 0; d < RISK_NDIMS; d++)
		assert_int_equal(r42->dims[d].residual, 0);
	assert_string_equal(risk_state_find(f->s, "au-5")
	                            ->h.ai[risk_state_find(f->s, "au-5")->h.effect.blocking_system]
	                            .id,
	                    "social-scoring");
	risk_state_commit(f->s);

	/* high-risk only: impact floor 4 on 42001 controls, none on 27001 */
	open_and_commit(f->s, "au-6", ai + 1, 1);
	assert_int_equal(ctl(f->s, "au-6", "ISO42001_2023", "A.9.2")->sc.impact, 4);
	assert_int_equal(ctl(f->s, "au-6", "ISO27001_2022", "A.5.1")->sc.impact, 3);
}

static void test_reference_day_moves_with_events(void **state)
{
	struct fixture *f = *state;
	const struct risk_batch_out *out;

	open_and_commit(f->s, "au-7", NULL, 0);
	risk_state_begin(f->s);
	mapped(f->s, 0, "au-7", T0, "scanner", "CONFIGURATION_SCAN", T0, "ISO27001_2022", "A.8.8",
	       RISK_LINK_DIRECT);
	finish(f->s);
	risk_state_commit(f->s);
	assert_int_equal(ctl(f->s, "au-7", "ISO27001_2022", "A.8.8")->sc.residual, 7);
	/* a year of event time later, the scan has no strength left: every control of the
	 * audit is recomputed, A.8.8 goes back to its inherent score */
	risk_state_begin(f->s);
	mapped(f->s, 0, "au-7", T0 + 400 * DAY_MS, "logs", "LOG_SAMPLE", T0 + 400 * DAY_MS,
	       "ISO27001_2022", "A.5.1", RISK_LINK_DIRECT);
	out = finish(f->s);
	assert_int_equal(out->recomputed, 7);
	assert_int_equal(ctl(f->s, "au-7", "ISO27001_2022", "A.8.8")->sc.residual, 16);
	risk_state_commit(f->s);
}

/* ---- determinism ---- */

struct ev {
	int type; /* 0 opened, 1 soa, 2 mapped */
	int topic;
	const char *audit, *source, *kind, *standard, *control;
	int64_t at, collected;
	int link;
};

static void apply(struct risk_state *s, size_t msg, const struct ev *e)
{
	static const struct risk_ai_system ai[] = {{"cv", RISK_AI_HIGH_RISK, RISK_ROLE_USER}};

	if (e->type == 0)
		opened(s, msg, e->audit, e->at, ai, 1);
	else if (e->type == 1)
		soa(s, msg, e->audit, e->at, (int)e->link, e->control);
	else
		mapped(s, msg, e->audit, e->at, e->source, e->kind, e->collected, e->standard,
		       e->control, e->link);
}

/* Dumps every score of every audit into buf. */
static void dump(struct risk_state *s, const char *const *audits, size_t naudits, char *buf,
                 size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < naudits; i++) {
		const struct risk_audit *a = risk_state_find(s, audits[i]);

		for (size_t k = 0; a && k < risk_state_nstd(s); k++)
			for (size_t pos = 0; pos < risk_state_std_size(s, (int)k); pos++) {
				const struct risk_ctl *c = &a->ctl[k][pos];

				if (!c->scored) {
					len += (size_t)snprintf(buf + len, size - len, "-;");
					continue;
				}
				len += (size_t)snprintf(
				        buf + len, size - len, "%s/%zu/%zu:%d:%d/%d/%d/%d/%d/%d;",
				        audits[i], k, pos, c->scored, c->sc.inherent,
				        c->sc.coverage, c->sc.residual, c->sc.band, c->sc.links[0],
				        c->sc.sources);
			}
		for (size_t k = 0; a && k < risk_state_nstd(s); k++)
			len += (size_t)snprintf(buf + len, size - len, "S%d/%d/%d;",
			                        a->h.last[k].applicable, a->h.last[k].with_evidence,
			                        a->h.last[k].ntop ? a->h.last[k].top[0].residual
			                                          : 0);
	}
}

static void test_final_scores_do_not_depend_on_batches(void **state)
{
	const int64_t d = DAY_MS;
	/* topic 0: audit events, topic 1: control.mapped; order within each topic is fixed */
	const struct ev stream[] = {
	        {0, 0, "au-a", NULL, NULL, NULL, NULL, T0, 0, 0},
	        {2, 1, "au-a", "scanner", "CONFIGURATION_SCAN", "ISO27001_2022", "A.8.8", T0, T0,
	         0},
	        {2, 1, "au-b", "siem", "LOG_SAMPLE", "ISO27001_2022", "A.8.15", T0, T0 - 30 * d, 0},
	        {1, 0, "au-a", NULL, NULL, NULL, "A.5.1", T0 + d, 0, 1},
	        {2, 1, "au-a", "grc", "POLICY", "ISO42001_2023", "A.7.4", T0 + d, T0 - 200 * d, 1},
	        {0, 0, "au-b", NULL, NULL, NULL, NULL, T0 + d, 0, 0},
	        {2, 1, "au-a", "siem", "LOG_SAMPLE", "ISO27001_2022", "A.8.8", T0 + 2 * d, T0, 0},
	        {2, 1, "au-b", "scanner", "TEST_REPORT", "ISO27001_2022", "A.8.15", T0 + 120 * d,
	         T0 + 100 * d, 2},
	        {1, 0, "au-a", NULL, NULL, NULL, "A.8.15", T0 + 3 * d, 0, 2},
	        {2, 1, "au-a", "scanner", "ATTESTATION", "ISO42001_2023", "A.9.2", T0 + 150 * d,
	         T0 + 140 * d, 0},
	        {2, 1, "au-b", "grc", "POLICY", "ISO27001_2022", "6.1.2", T0 + 150 * d, T0 - 10 * d,
	         1},
	};
	const size_t n = sizeof(stream) / sizeof(stream[0]);
	static const char *const audits[] = {"au-a", "au-b"};
	static char ref[16384], got[16384];
	/* batch sizes and topic interleavings to compare */
	const size_t sizes[] = {1, 2, 3, 5, 11};

	(void)state;
	for (int variant = 0; variant < 3 * (int)(sizeof(sizes) / sizeof(sizes[0])); variant++) {
		struct assay_catalog *cat = catalog();
		struct risk_state *s = state_new(cat);
		size_t bs = sizes[variant % 5], order[32], no = 0;
		int interleave = variant / 5;

		/* interleave 0: stream order; 1: all audit events first; 2: all mapped first */
		if (interleave == 0) {
			for (size_t i = 0; i < n; i++)
				order[no++] = i;
		} else {
			int first = interleave == 1 ? 0 : 1;

			for (int t = 0; t < 2; t++)
				for (size_t i = 0; i < n; i++)
					if (stream[i].topic == (t == 0 ? first : 1 - first))
						order[no++] = i;
		}
		for (size_t i = 0; i < no; i += bs) {
			risk_state_begin(s);
			for (size_t k = i; k < i + bs && k < no; k++)
				apply(s, k - i, &stream[order[k]]);
			finish(s);
			/* roll back every other batch once and redo it: same result */
			if ((i / bs) % 2 == 1) {
				risk_state_rollback(s);
				risk_state_begin(s);
				for (size_t k = i; k < i + bs && k < no; k++)
					apply(s, k - i, &stream[order[k]]);
				finish(s);
			}
			risk_state_commit(s);
		}
		dump(s, audits, 2, variant == 0 ? ref : got, sizeof(ref));
		if (variant > 0)
			assert_string_equal(got, ref);
		risk_state_destroy(s);
		assay_catalog_destroy(cat);
	}
	/* and the result is not trivial */
	assert_non_null(strstr(ref, "au-a/0/2:1:16/"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_scoring_starts_when_the_audit_opens, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_batch_recomputes_only_what_it_touches, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_rollback_restores_state, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_soa_excludes_controls, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_prohibited_practice_blocks_42001_only, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_reference_day_moves_with_events, setup,
	                                        teardown),
	        cmocka_unit_test(test_final_scores_do_not_depend_on_batches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
