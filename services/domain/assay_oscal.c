/*
 * The crosswalk as an OSCAL 1.1 mapping collection (JSON): one mapping per pair of standards,
 * each edge with its relation, strength and rationale, ids and UUIDs derived from content so
 * the same crosswalk always gives the same document.
 */
#include "assay_crosswalk.h"
#include "assay_crosswalk_int.h"
#include "assay_err.h"
#include "assay_strbuf.h"
#include "assay_uuid.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

/* ---- OSCAL export ---- */

/* Writes s as a JSON string literal; true when out of memory (nothing written then). */
static bool json_str(FILE *f, const char *s)
{
	char buf[1024];
	struct assay_strbuf sb;
	bool failed;

	assay_strbuf_init_fixed(&sb, buf, sizeof(buf));
	assay_strbuf_append_json(&sb, s, strlen(s));
	failed = sb.failed;
	if (!failed)
		fwrite(sb.p, 1, sb.len, f);
	assay_strbuf_release(&sb);
	return failed;
}

static void oscal_id(FILE *f, const struct assay_control *ctl)
{
	/* OSCAL tokens start with a letter or '_': "A.5.1" as is, clause "4.1" -> "clause-4.1" */
	fprintf(f, "\"%s%s\"", ctl->annex_a ? "" : "clause-", ctl->id);
}

static void name_uuid(char out[ASSAY_UUID_LEN], const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void name_uuid(char out[ASSAY_UUID_LEN], const char *fmt, ...)
{
	char name[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	assay_uuid_from_name(name, strlen(name), out);
}

#define OSCAL_NS "urn:assay:oscal"

/* export order: catalog order of source, then of target (controls share one array) */
static int edge_ptr_order(const void *pa, const void *pb)
{
	const struct assay_crosswalk_edge *a = *(const struct assay_crosswalk_edge *const *)pa;
	const struct assay_crosswalk_edge *b = *(const struct assay_crosswalk_edge *const *)pb;

	if (a->source != b->source)
		return a->source < b->source ? -1 : 1;
	if (a->target != b->target)
		return a->target < b->target ? -1 : 1;
	return 0;
}

int assay_crosswalk_write_oscal(const struct assay_crosswalk *cw, FILE *out, int64_t now_ms,
                                char *errstr, size_t errstr_size)
{
	const struct assay_catalog *cat = cw->cat;
	size_t nstd = assay_catalog_standard_count(cat);
	char uuid[ASSAY_UUID_LEN], ts[32];
	time_t secs = (time_t)(now_ms / 1000);
	struct tm tm;
	const struct assay_crosswalk_edge **order;
	bool first_mapping = true, oom = false;

	order = calloc(cw->nedges + 1, sizeof(*order));
	if (order == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "oscal export: out of memory");
	for (size_t i = 0; i < cw->nedges; i++)
		order[i] = &cw->edges[i];
	qsort(order, cw->nedges, sizeof(*order), edge_ptr_order);
	gmtime_r(&secs, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	name_uuid(uuid, "assay crosswalk mapping-collection %zu edges", cw->nedges);

	fputs("{\n  \"mapping-collection\": {\n    \"uuid\": ", out);
	oom |= json_str(out, uuid);
	fputs(",\n    \"metadata\": {\n      \"title\": ", out);
	oom |= json_str(out, "assay crosswalk ISO/IEC 27001:2022 <-> ISO/IEC 42001:2023");
	fputs(",\n      \"last-modified\": ", out);
	oom |= json_str(out, ts);
	fputs(",\n      \"version\": \"1\",\n      \"oscal-version\": \"1.2.0\",\n      "
	      "\"remarks\": ",
	      out);
	oom |= json_str(
	        out, "assay's own judgement, not ISO's; links say which evidence may be looked at, "
	             "never what it proves (docs/crosswalk.md)");
	fputs("\n    },\n    \"provenance\": {\n      \"method\": \"human\",\n"
	      "      \"matching-rationale\": \"semantic\",\n      \"status\": \"complete\",\n"
	      "      \"mapping-description\": ",
	      out);
	oom |= json_str(out,
	                "control ids and titles compared by assay's engineers with the harmonized "
	                "structure clause map; high-strength equivalent-to/equal-to edges link "
	                "evidence automatically, every other edge needs an auditor's confirmation");
	fputs("\n    },\n    \"mappings\": [", out);

	for (size_t si = 0; si < nstd; si++) {
		for (size_t ti = 0; ti < nstd; ti++) {
			const char *src = assay_catalog_standard_at(cat, si)->standard;
			const char *tgt = assay_catalog_standard_at(cat, ti)->standard;
			bool first_map = true;

			for (size_t i = 0; i < cw->nedges; i++) {
				const struct assay_crosswalk_edge *e = order[i];

				if (strcmp(e->source->standard, src) != 0 ||
				    strcmp(e->target->standard, tgt) != 0)
					continue;
				if (first_map) {
					fputs(first_mapping ? "\n" : ",\n", out);
					first_mapping = false;
					name_uuid(uuid, "assay crosswalk mapping %s %s", src, tgt);
					fputs("      {\n        \"uuid\": ", out);
					oom |= json_str(out, uuid);
					fprintf(out,
					        ",\n        \"source-resource\": {\"type\": "
					        "\"catalog\", \"href\": "
					        "\"urn:assay:catalog:%s\"},\n"
					        "        \"target-resource\": {\"type\": "
					        "\"catalog\", \"href\": "
					        "\"urn:assay:catalog:%s\"},\n"
					        "        \"maps\": [",
					        src, tgt);
				}
				fputs(first_map ? "\n" : ",\n", out);
				first_map = false;
				name_uuid(uuid, "assay crosswalk map %s:%s %s:%s", src,
				          e->source->id, tgt, e->target->id);
				fputs("          {\n            \"uuid\": ", out);
				oom |= json_str(out, uuid);
				fprintf(out,
				        ",\n            \"relationship\": \"%s\",\n"
				        "            \"matching-rationale\": \"semantic\",\n"
				        "            \"sources\": [{\"type\": \"control\", "
				        "\"id-ref\": ",
				        assay_relation_token(e->relation));
				oscal_id(out, e->source);
				fputs("}],\n            \"targets\": [{\"type\": \"control\", "
				      "\"id-ref\": ",
				      out);
				oscal_id(out, e->target);
				fprintf(out,
				        "}],\n            \"props\": [\n"
				        "              {\"name\": \"strength\", \"ns\": \"" OSCAL_NS
				        "\", \"value\": \"%s\"},\n"
				        "              {\"name\": \"link-kind\", \"ns\": "
				        "\"" OSCAL_NS "\", \"value\": \"%s\"},\n"
				        "              {\"name\": \"source-control\", \"ns\": "
				        "\"" OSCAL_NS "\", \"value\": \"%s:%s\"},\n"
				        "              {\"name\": \"target-control\", \"ns\": "
				        "\"" OSCAL_NS "\", \"value\": \"%s:%s\"},\n"
				        "              {\"name\": \"provenance\", \"ns\": "
				        "\"" OSCAL_NS "\", \"value\": ",
				        assay_strength_token(e->strength),
				        assay_link_kind_symbol(assay_crosswalk_link_kind(
				                e->relation, e->strength)),
				        src, e->source->id, tgt, e->target->id);
				oom |= json_str(out, e->provenance);
				fputs("}\n            ],\n            \"remarks\": ", out);
				oom |= json_str(out, e->rationale);
				fputs("\n          }", out);
			}
			if (!first_map)
				fputs("\n        ]\n      }", out);
		}
	}
	fputs("\n    ]\n  }\n}\n", out);
	free(order);
	if (oom)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "oscal export: out of memory");
	if (fflush(out) != 0 || ferror(out))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "oscal export: write failed");
	return 0;
}
