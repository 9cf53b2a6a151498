/*
 * The arithmetic of the risk model (risk_model.h, docs/risk-model.md): strengths, freshness,
 * coverage, residual, bands, the AI effect and the per-standard summary. Integer per mille
 * throughout, so scores are the same whatever order the evidence came in.
 */
#include "risk_model.h"
#include "assay_err.h"

#include <string.h>

void risk_params_default(struct risk_params *p)
{
	memset(p, 0, sizeof(*p));
	p->likelihood_default = 3;
	p->impact_default = 3;
	/* domain-rules 3.6: "for Annex III high-risk uses the impact is at least 4" */
	p->ai_impact_high_risk = 4;
	p->ai_impact_high_risk_provider = 5;
	p->ai_impact_limited_risk = 3;
	p->ai_impact_not_assessed = 3;
	p->tier_permille[RISK_TIER_AUTOMATED] = 1000;
	p->tier_permille[RISK_TIER_SAMPLED] = 700;
	p->tier_permille[RISK_TIER_DOCUMENT] = 450;
	p->tier_permille[RISK_TIER_ATTESTATION] = 250;
	p->tier_permille[RISK_TIER_OTHER] = 150;
	p->link_permille[RISK_LINK_DIRECT] = 1000;
	p->link_permille[RISK_LINK_AUTOMATIC] = 800;
	/* domain-rules R1.18: 90 days is the common evidence window; intake refuses evidence
	 * older than 365 days (intake.freshness.days) */
	p->fresh_full_days = 90;
	p->fresh_window_days = 365;
	p->single_source_permille = 700;
	p->source_bonus_permille = 150;
	p->max_reduction_permille = 800;
	/* domain-rules 3.1: 1-4 very low, 5-9 low, 10-14 medium, 15-19 high, 20-25 critical */
	p->band_min[RISK_BAND_VERY_LOW] = 1;
	p->band_min[RISK_BAND_LOW] = 5;
	p->band_min[RISK_BAND_MEDIUM] = 10;
	p->band_min[RISK_BAND_HIGH] = 15;
	p->band_min[RISK_BAND_CRITICAL] = 20;
	p->top_count = 5;
}

static bool in_range(int v, int lo, int hi)
{
	return v >= lo && v <= hi;
}

int risk_params_check(const struct risk_params *p, char *errstr, size_t errstr_size)
{
	if (!in_range(p->likelihood_default, 1, 5) || !in_range(p->impact_default, 1, 5))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "risk params invalid: default likelihood and impact must be 1-5");
	if (!in_range(p->ai_impact_high_risk, 0, 5) ||
	    !in_range(p->ai_impact_high_risk_provider, 0, 5) ||
	    !in_range(p->ai_impact_limited_risk, 0, 5) ||
	    !in_range(p->ai_impact_not_assessed, 0, 5))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "risk params invalid: ai impact floors must be 0-5");
	for (int t = 0; t < RISK_NTIERS; t++)
		if (!in_range(p->tier_permille[t], 0, 1000))
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "risk params invalid: tier strength %d not 0-1000", t);
	for (int t = 1; t < RISK_NTIERS; t++)
		if (p->tier_permille[t] > p->tier_permille[t - 1])
			return assay_errf(
			        ASSAY_ERR_FATAL, errstr, errstr_size,
			        "risk params invalid: tier strengths must not increase "
			        "(automated >= sampled >= document >= attestation >= other)");
	for (int l = 0; l < RISK_NCOUNTED; l++)
		if (!in_range(p->link_permille[l], 0, 1000))
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "risk params invalid: link factor not 0-1000");
	if (p->fresh_full_days < 0 || p->fresh_window_days <= p->fresh_full_days)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "risk params invalid: freshness window (%d days) must be longer "
		                  "than the full-strength age (%d days)",
		                  p->fresh_window_days, p->fresh_full_days);
	if (!in_range(p->single_source_permille, 0, 1000) ||
	    !in_range(p->source_bonus_permille, 0, 1000) ||
	    !in_range(p->max_reduction_permille, 0, 1000))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "risk params invalid: coverage and reduction must be 0-1000");
	if (p->band_min[0] != 1)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "risk params invalid: the lowest band must start at 1");
	for (int b = 1; b < RISK_NBANDS; b++)
		if (p->band_min[b] <= p->band_min[b - 1] || p->band_min[b] > 25)
			return assay_errf(
			        ASSAY_ERR_FATAL, errstr, errstr_size,
			        "risk params invalid: band limits must increase within 1-25");
	if (!in_range(p->top_count, 0, RISK_TOP_MAX))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "risk params invalid: top count must be 0-%d", RISK_TOP_MAX);
	return 0;
}

enum risk_tier risk_kind_tier(const char *kind)
{
	static const struct {
		const char *kind;
		enum risk_tier tier;
	} kinds[] = {
	        {"CONFIGURATION_SCAN", RISK_TIER_AUTOMATED},
	        {"TEST_REPORT", RISK_TIER_AUTOMATED},
	        {"BIAS_EVALUATION", RISK_TIER_AUTOMATED},
	        {"LOG_SAMPLE", RISK_TIER_SAMPLED},
	        {"ACCESS_REVIEW", RISK_TIER_SAMPLED},
	        {"POLICY", RISK_TIER_DOCUMENT},
	        {"MODEL_CARD", RISK_TIER_DOCUMENT},
	        {"DATA_PROVENANCE", RISK_TIER_DOCUMENT},
	        {"ATTESTATION", RISK_TIER_ATTESTATION},
	};

	if (kind == NULL)
		return RISK_TIER_OTHER;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kind, kinds[i].kind) == 0)
			return kinds[i].tier;
	return RISK_TIER_OTHER;
}

static int symbol_index(const char *const *symbols, int n, const char *s)
{
	if (s == NULL)
		return -1;
	for (int i = 0; i < n; i++)
		if (strcmp(symbols[i], s) == 0)
			return i;
	return -1;
}

int risk_link_parse(const char *symbol)
{
	static const char *const links[] = {"DIRECT", "AUTOMATIC", "NEEDS_CONFIRMATION"};

	return symbol_index(links, RISK_NLINKS, symbol);
}

int risk_ai_tier_parse(const char *symbol)
{
	static const char *const tiers[] = {"PROHIBITED", "HIGH_RISK", "LIMITED_RISK",
	                                    "MINIMAL_RISK", "NOT_ASSESSED"};

	return symbol_index(tiers, 5, symbol);
}

unsigned risk_ai_role_parse(const char *symbol)
{
	static const char *const roles[] = {"PROVIDER", "PRODUCER", "USER"};
	int i = symbol_index(roles, 3, symbol);

	return i < 0 ? 0u : 1u << i;
}

static const char *const band_symbols[RISK_NBANDS] = {"VERY_LOW", "LOW", "MEDIUM", "HIGH",
                                                      "CRITICAL"};

const char *risk_band_symbol(int band)
{
	return band >= 0 && band < RISK_NBANDS ? band_symbols[band] : NULL;
}

int risk_band_of(const struct risk_params *p, int score)
{
	if (score < p->band_min[0])
		return RISK_BAND_NONE;
	for (int b = RISK_NBANDS - 1; b > 0; b--)
		if (score >= p->band_min[b])
			return b;
	return RISK_BAND_VERY_LOW;
}

static const char *const dim_symbols[RISK_NDIMS] = {
        "BIAS_FAIRNESS",   "EXPLAINABILITY_TRANSPARENCY",
        "HUMAN_OVERSIGHT", "DATA_QUALITY_PROVENANCE",
        "ROBUSTNESS",      "PRIVACY",
        "SAFETY",          "ACCOUNTABILITY"};

const char *risk_dim_symbol(int dim)
{
	return dim >= 0 && dim < RISK_NDIMS ? dim_symbols[dim] : NULL;
}

int risk_dim_parse(const char *symbol)
{
	return symbol_index(dim_symbols, RISK_NDIMS, symbol);
}

int32_t risk_day_of_ms(int64_t ms)
{
	int64_t d = ms / 86400000;

	if (ms % 86400000 != 0 && ms < 0)
		d--;
	return (int32_t)d;
}

int risk_freshness_permille(const struct risk_params *p, int32_t age_days)
{
	if (age_days <= p->fresh_full_days)
		return 1000;
	if (age_days >= p->fresh_window_days)
		return 0;
	return (int)(1000LL * (p->fresh_window_days - age_days) /
	             (p->fresh_window_days - p->fresh_full_days));
}

int risk_strength_permille(const struct risk_params *p, enum risk_tier tier, enum risk_link link,
                           int32_t age_days)
{
	long long s;

	if ((int)tier < 0 || tier >= RISK_NTIERS || link == RISK_LINK_PENDING || (int)link < 0 ||
	    link >= RISK_NCOUNTED)
		return 0;
	s = (long long)p->tier_permille[tier] * p->link_permille[link] / 1000;
	return (int)(s * risk_freshness_permille(p, age_days) / 1000);
}

int risk_coverage_permille(const struct risk_params *p, const int *strengths, size_t n)
{
	size_t best = 0;
	long long c;

	if (n == 0)
		return 0;
	for (size_t i = 1; i < n; i++)
		if (strengths[i] > strengths[best])
			best = i;
	/* floor of each term separately: the sum does not depend on the order */
	c = (long long)strengths[best] * p->single_source_permille / 1000;
	for (size_t i = 0; i < n; i++)
		if (i != best)
			c += (long long)strengths[i] * p->source_bonus_permille / 1000;
	return c > 1000 ? 1000 : (int)c;
}

int risk_residual(const struct risk_params *p, int inherent, int coverage_permille)
{
	int reduction = (int)((long long)coverage_permille * p->max_reduction_permille / 1000);
	int r = (int)(((long long)inherent * (1000 - reduction) + 500) / 1000);

	return r < 1 ? 1 : r;
}

void risk_ai_effect_of(const struct risk_params *p, const struct risk_ai_system *systems, size_t n,
                       struct risk_ai_effect *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		const struct risk_ai_system *s = &systems[i];
		int floor = 0;

		switch (s->tier) {
		case RISK_AI_PROHIBITED:
			if (!out->blocking || strcmp(s->id, systems[out->blocking_system].id) < 0)
				out->blocking_system = i;
			out->blocking = true;
			break;
		case RISK_AI_HIGH_RISK:
			floor = s->roles & (RISK_ROLE_PROVIDER | RISK_ROLE_PRODUCER)
			                ? p->ai_impact_high_risk_provider
			                : p->ai_impact_high_risk;
			break;
		case RISK_AI_LIMITED_RISK:
			floor = p->ai_impact_limited_risk;
			break;
		case RISK_AI_MINIMAL_RISK:
			break;
		default: /* NOT_ASSESSED and tiers this reader does not know */
			floor = p->ai_impact_not_assessed;
			break;
		}
		if (floor > out->impact_floor)
			out->impact_floor = floor;
	}
}

void risk_score_control(const struct risk_params *p, int likelihood, int impact,
                        const struct risk_ai_effect *ai, const struct risk_evidence *ev,
                        int32_t ref_day, struct risk_score *out)
{
	long long bonus = 0, c;
	int best_all = -1;

	memset(out, 0, sizeof(*out));
	if (ai && ai->impact_floor > impact)
		impact = ai->impact_floor;
	out->likelihood = likelihood;
	out->impact = impact;
	out->inherent = likelihood * impact;
	for (uint32_t i = 0; ev && i < ev->nsources; i++) {
		const struct risk_source *src = &ev->sources[i];
		int best = -1;

		for (int t = 0; t < RISK_NTIERS; t++)
			for (int l = 0; l < RISK_NCOUNTED; l++) {
				int s;

				if (src->newest[t][l] == RISK_DAY_NONE)
					continue;
				s = risk_strength_permille(p, (enum risk_tier)t, (enum risk_link)l,
				                           ref_day - src->newest[t][l]);
				if (s > best)
					best = s;
			}
		if (best < 0)
			continue; /* only pending links from this source */
		out->sources++;
		/* as risk_coverage_permille: every source's bonus, the strongest's swapped
		 * for the single-source share at the end */
		bonus += (long long)best * p->source_bonus_permille / 1000;
		if (best > best_all)
			best_all = best;
	}
	for (int l = 0; ev && l < RISK_NLINKS; l++)
		out->links[l] = ev->links[l];
	c = 0;
	if (best_all >= 0)
		c = bonus - (long long)best_all * p->source_bonus_permille / 1000 +
		    (long long)best_all * p->single_source_permille / 1000;
	out->coverage = c > 1000 ? 1000 : (int)c;
	if (ai && ai->blocking) {
		out->blocking = true;
		out->residual = 0;
		out->band = RISK_BAND_NONE;
		return;
	}
	out->residual = risk_residual(p, out->inherent, out->coverage);
	out->band = risk_band_of(p, out->residual);
}

/* a ranks above b in the top list */
static bool top_before(const struct risk_summary_item *a, const struct risk_summary_item *b)
{
	if (a->residual != b->residual)
		return a->residual > b->residual;
	if (a->inherent != b->inherent)
		return a->inherent > b->inherent;
	return a->order < b->order;
}

void risk_summarize(const struct risk_params *p, const struct risk_summary_item *items, size_t n,
                    struct risk_summary *out)
{
	const struct risk_summary_item *top[RISK_TOP_MAX];
	int ntop = 0, cap = p->top_count < RISK_TOP_MAX ? p->top_count : RISK_TOP_MAX;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		const struct risk_summary_item *it = &items[i];
		int k;

		out->applicable++;
		if (it->with_evidence)
			out->with_evidence++;
		if (it->blocking) {
			out->blocking++;
			continue;
		}
		if (it->band >= 0 && it->band < RISK_NBANDS)
			out->bands[it->band]++;
		/* insertion into the sorted top list */
		if (cap == 0 || (ntop == cap && !top_before(it, top[ntop - 1])))
			continue;
		k = ntop < cap ? ntop++ : ntop - 1;
		while (k > 0 && top_before(it, top[k - 1])) {
			top[k] = top[k - 1];
			k--;
		}
		top[k] = it;
	}
	out->ntop = ntop;
	for (int i = 0; i < ntop; i++) {
		out->top[i].control_id = top[i]->control_id;
		out->top[i].residual = top[i]->residual;
		out->top[i].band = top[i]->band;
	}
}

bool risk_summary_equal(const struct risk_summary *a, const struct risk_summary *b)
{
	if (a->applicable != b->applicable || a->with_evidence != b->with_evidence ||
	    a->blocking != b->blocking || a->ntop != b->ntop ||
	    memcmp(a->bands, b->bands, sizeof(a->bands)) != 0)
		return false;
	for (int i = 0; i < a->ntop; i++)
		if (a->top[i].residual != b->top[i].residual || a->top[i].band != b->top[i].band ||
		    strcmp(a->top[i].control_id, b->top[i].control_id) != 0)
			return false;
	return true;
}
