/*
 * Intake's events on the generated contracts (services/intake/intake_events.h) against
 * avro-c's generic path, on the embedded schemas over an in-memory registry:
 *   - the generated EvidenceSubmitted decoder with intake_submitted_read gives exactly the
 *     evidence the codec + a reader of avro-c's generic value give, for thousands of
 *     generated events (multi-byte UTF-8, empty and long strings, empty and full arrays and
 *     maps, extreme longs, every kind, repeated attribute keys);
 *   - every truncation of a valid body, thousands of random mutations and a table of crafted
 *     bodies are refused by both or decoded alike by both (frames are exact-size copies, so
 *     ASan sees any over-read), and a refused string is told apart as invalid UTF-8;
 *   - frames of another writer schema (a newer EvidenceSubmitted with an optional field,
 *     null or set) decode alike, and a frame over the codec's limit is refused;
 *   - EvidenceAccepted filled by intake_accepted_fill and written by the generated encoder
 *     has the bytes avro-c's generic encoding writes.
 */
#include "assay_test.h"
#include "intake_events.h"

#include "assay_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBMITTED "org.assay.v1.EvidenceSubmitted"
#define ACCEPTED  "org.assay.v1.EvidenceAccepted"

struct fixture {
	struct assay_registry *reg;
	struct assay_codec *codec;
	const struct assay_schema *submitted, *accepted;
	struct assay_contracts *cx;
	struct assay_arena arena;
	struct assay_contract_buf out;
	uint64_t rng;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char errstr[256] = "";

	if (f == NULL)
		return -1;
	f->reg = assay_registry_memory_new(errstr, sizeof(errstr));
	f->codec = f->reg ? assay_codec_new(f->reg, 1 << 20, errstr, sizeof(errstr)) : NULL;
	if (f->codec == NULL ||
	    assay_codec_register_embedded(f->codec, errstr, sizeof(errstr)) != 0 ||
	    assay_codec_schema_by_name(f->codec, SUBMITTED, &f->submitted, errstr,
	                               sizeof(errstr)) != 0 ||
	    assay_codec_schema_by_name(f->codec, ACCEPTED, &f->accepted, errstr, sizeof(errstr)) !=
	            0 ||
	    (f->cx = assay_contracts_new(f->codec, errstr, sizeof(errstr))) == NULL) {
		fprintf(stderr, "setup: %s\n", errstr);
		assay_codec_destroy(f->codec);
		assay_registry_destroy(f->reg);
		free(f);
		return -1;
	}
	f->rng = 0x9e3779b97f4a7c15ULL;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assay_contracts_destroy(f->cx);
	assay_arena_release(&f->arena);
	assay_contract_buf_release(&f->out);
	assay_codec_destroy(f->codec);
	assay_registry_destroy(f->reg);
	free(f);
	return 0;
}

/* ---- random values (xorshift64*, reproducible) ---- */

static uint64_t rnd(struct fixture *f)
{
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 0x2545f4914f6cdd1dULL;
}

static size_t rnd_below(struct fixture *f, size_t n)
{
	return n ? (size_t)(rnd(f) % n) : 0;
}

/* A long: small, negative, or one of the extremes. */
static int64_t rnd_long(struct fixture *f)
{
	static const int64_t edges[] = {0, -1, 1, 63, -64, 64, INT64_MAX, INT64_MIN, 1LL << 62};

	switch (rnd_below(f, 4)) {
	case 0:
		return edges[rnd_below(f, sizeof(edges) / sizeof(edges[0]))];
	case 1:
		return (int64_t)rnd(f);
	default:
		return (int64_t)rnd_below(f, 2000000000000LL);
	}
}

/* A NUL-terminated UTF-8 string without NUL of at most max bytes into out (max + 1 bytes):
 * ASCII including control characters, and 2-, 3- and 4-byte sequences. */
static size_t rnd_utf8(struct fixture *f, char *out, size_t max)
{
	static const char *const multi[] = {"\xc3\xa9",        "\xd0\x96",     "\xe2\x82\xac",
	                                    "\xef\xbf\xbd",    "\xe4\xb8\xad", "\xf0\x9f\x98\x80",
	                                    "\xf4\x8f\xbf\xbf"};
	size_t target = rnd_below(f, 8) == 0 ? rnd_below(f, max + 1)
	                                     : rnd_below(f, 24 < max ? 24 : max + 1);
	bool ascii = rnd_below(f, 2) == 0;
	size_t n = 0;

	while (n < target) {
		const char *m = multi[rnd_below(f, sizeof(multi) / sizeof(multi[0]))];
		size_t mlen = strlen(m);

		if (ascii || rnd_below(f, 3) != 0 || n + mlen > target) {
			out[n++] = (char)(rnd_below(f, 10) == 0 ? 1 + rnd_below(f, 31)
			                                        : 0x20 + rnd_below(f, 95));
			continue;
		}
		memcpy(out + n, m, mlen);
		n += mlen;
	}
	out[n] = '\0';
	return n;
}

/* ---- UTF-8 validation (used by the fast decoder) ---- */

/* RFC 3629 by code point, the plain way: the reference for intake_utf8_valid. */
static bool utf8_reference(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n;

		if (s[i] < 0x80) {
			if (s[i] == 0)
				return false;
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			n = 1;
			cp = s[i] & 0x1f;
		} else if ((s[i] & 0xf0) == 0xe0) {
			n = 2;
			cp = s[i] & 0x0f;
		} else if ((s[i] & 0xf8) == 0xf0) {
			n = 3;
			cp = s[i] & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

static void test_utf8_validation_matches_a_reference(void **state)
{
	struct fixture *f = *state;
	static const unsigned char alphabet[] = {0x00, 0x01, 0x41, 0x7f, 0x80, 0x81, 0xbf,
	                                         0xc0, 0xc2, 0xdf, 0xe0, 0xa0, 0xed, 0x9f,
	                                         0xef, 0xf0, 0x90, 0xf4, 0x8f, 0xf5, 0xff};
	unsigned char s[40];
	size_t valid = 0;

	for (int n = 0; n < 200000; n++) {
		size_t len = rnd_below(f, sizeof(s) + 1);
		size_t odd = rnd_below(f, 4); /* how many bytes are not plain ASCII letters */

		memset(s, 'a', len);
		for (size_t k = 0; k < odd && len > 0; k++)
			s[rnd_below(f, len)] = alphabet[rnd_below(f, sizeof(alphabet))];
		if (n % 7 == 0 && len >= 8) /* a run of zeros */
			memset(s + rnd_below(f, len - 7), 0, 8);
		if (intake_utf8_valid((const char *)s, len) != utf8_reference(s, len))
			fail_msg("utf-8 verdicts differ on a string of %zu bytes", len);
		valid += utf8_reference(s, len);
	}
	assert_true(valid > 10000 && valid < 190000);
}

/* ---- generated EvidenceSubmitted ---- */

#define MAX_STR 200

struct gen {
	char str[8][MAX_STR + 1]; /* event, tenant, audit, client, evidence, source, sha, uri */
	char controls[40][MAX_STR + 1];
	size_t ncontrols;
	char keys[70][MAX_STR + 8], values[70][MAX_STR + 1];
	size_t nattrs;
	int kind;
	int64_t occurred_at, collected_at, size_bytes;
};

static const char *const string_fields[8] = {"event_id",  "tenant_id",   "audit_id",
                                             "client_id", "evidence_id", "source_system",
                                             "sha256",    "uri"};

static void gen_random(struct fixture *f, struct gen *g, size_t max_attrs)
{
	memset(g, 0, sizeof(*g));
	for (int k = 0; k < 8; k++)
		rnd_utf8(f, g->str[k], MAX_STR);
	g->ncontrols = rnd_below(f, 3) == 0 ? 0 : rnd_below(f, 40);
	for (size_t i = 0; i < g->ncontrols; i++)
		rnd_utf8(f, g->controls[i], 40);
	g->nattrs = rnd_below(f, 3) == 0 ? 0 : rnd_below(f, max_attrs + 1);
	for (size_t i = 0; i < g->nattrs; i++) {
		size_t n = rnd_utf8(f, g->keys[i], MAX_STR);

		snprintf(g->keys[i] + n, 8, "#%u", (unsigned)(i % 100)); /* distinct keys */
		rnd_utf8(f, g->values[i], MAX_STR);
	}
	g->kind = (int)rnd_below(f, 10);
	g->occurred_at = rnd_long(f);
	g->collected_at = rnd_long(f);
	g->size_bytes = rnd_long(f);
}

/* g as avro-c encodes it under s (the embedded schema or a newer writer's); *buf malloc'd. */
static void gen_encode(struct fixture *f, const struct assay_schema *s, const struct gen *g,
                       const char *note, void **buf, size_t *len)
{
	avro_value_t v, arr, map, elem;
	char errstr[256] = "";

	assert_int_equal(assay_codec_value_new(s, &v), 0);
	for (int k = 0; k < 8; k++)
		assert_int_equal(assay_value_set_string(&v, string_fields[k], g->str[k]), 0);
	assert_int_equal(assay_value_set_long(&v, "occurred_at", g->occurred_at), 0);
	assert_int_equal(avro_value_get_by_name(&v, "kind", &elem, NULL), 0);
	assert_int_equal(avro_value_set_enum(&elem, g->kind), 0);
	assert_int_equal(assay_value_set_long(&v, "collected_at", g->collected_at), 0);
	assert_int_equal(assay_value_set_long(&v, "size_bytes", g->size_bytes), 0);
	assert_int_equal(assay_value_field(&v, "claimed_controls", AVRO_ARRAY, &arr), 0);
	for (size_t i = 0; i < g->ncontrols; i++) {
		assert_int_equal(avro_value_append(&arr, &elem, NULL), 0);
		assert_int_equal(avro_value_set_string(&elem, g->controls[i]), 0);
	}
	assert_int_equal(assay_value_field(&v, "attributes", AVRO_MAP, &map), 0);
	for (size_t i = 0; i < g->nattrs; i++) {
		assert_int_equal(avro_value_add(&map, g->keys[i], &elem, NULL, NULL), 0);
		assert_int_equal(avro_value_set_string(&elem, g->values[i]), 0);
	}
	if (avro_value_get_by_name(&v, "note", &elem, NULL) == 0)
		assert_int_equal(assay_value_set_null_or_string(&v, "note", note), 0);
	if (assay_codec_encode(f->codec, s, &v, buf, len, errstr, sizeof(errstr)) != 0)
		fail_msg("encode: %s", errstr);
	avro_value_decref(&v);
}

/* ---- the two decoders ---- */

struct decoded {
	struct intake_evidence ev;
	struct intake_lists lists;
	struct assay_decoded d; /* the generic path's value, which ev views */
	int rc;
	bool utf8; /* the contract decoder refused a string's UTF-8 */
	char why[512];
};

static void decoded_release(struct decoded *x)
{
	intake_lists_release(&x->lists);
	assay_decoded_release(&x->d);
}

/* The generated decoder and intake_submitted_read on an exact-size copy of frame (so that
 * ASan sees an over-read). */
static void decode_contract(struct fixture *f, const void *frame, size_t len, struct decoded *x,
                            void **copy)
{
	struct assay_evidence_submitted sub;
	char *why = x->why;

	memset(x, 0, sizeof(*x));
	intake_lists_init(&x->lists);
	assay_arena_reset(&f->arena);
	*copy = malloc(len ? len : 1);
	assert_non_null(*copy);
	if (len)
		memcpy(*copy, frame, len);
	x->rc = assay_evidence_submitted_decode(f->cx, *copy, len, &f->arena, &sub, why,
	                                        sizeof(x->why));
	x->utf8 = x->rc != 0 && assay_contract_refused_utf8(f->cx);
	if (x->rc == 0)
		x->rc = intake_submitted_read(&sub, &x->ev, &x->lists);
}

/* Reads a generic EvidenceSubmitted value as intake read it before the contracts: fields by
 * name, kind OTHER when the writer has none, the map as avro-c holds it. */
static int from_value(avro_value_t *v, struct intake_evidence *ev, struct intake_lists *l)
{
	static struct intake_str cbuf[4096];
	static struct intake_attr abuf[4096];
	avro_value_t arr, map, elem;
	size_t n = 0;
	const char *kind = NULL;
	const struct {
		const char *name;
		struct intake_str *dest;
	} strings[] = {
	        {"event_id", &ev->event_id},       {"tenant_id", &ev->tenant_id},
	        {"audit_id", &ev->audit_id},       {"client_id", &ev->client_id},
	        {"evidence_id", &ev->evidence_id}, {"source_system", &ev->source_system},
	        {"sha256", &ev->sha256},           {"uri", &ev->uri},
	};

	(void)l;
	memset(ev, 0, sizeof(*ev));
	for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]); k++)
		if (assay_value_string(v, strings[k].name, &strings[k].dest->p,
		                       &strings[k].dest->len) != 0)
			return ASSAY_ERR_REJECT;
	if (assay_value_enum_or(v, "kind", "OTHER", &kind) != 0)
		return ASSAY_ERR_REJECT;
	ev->kind.p = kind;
	ev->kind.len = strlen(kind);
	if (assay_value_long(v, "collected_at", &ev->collected_at_ms) != 0 ||
	    assay_value_long(v, "size_bytes", &ev->size_bytes) != 0 ||
	    assay_value_array(v, "claimed_controls", &arr, &n) != 0 || n > 4096)
		return ASSAY_ERR_REJECT;
	for (size_t i = 0; i < n; i++)
		if (assay_value_array_get(&arr, i, &elem) != 0 ||
		    assay_value_as_string(&elem, &cbuf[i].p, &cbuf[i].len) != 0)
			return ASSAY_ERR_REJECT;
	ev->controls = cbuf;
	ev->ncontrols = n;
	if (assay_value_map_opt(v, "attributes", &map, &n) != 0 || n > 4096)
		return ASSAY_ERR_REJECT;
	for (size_t i = 0; i < n; i++) {
		if (assay_value_map_get(&map, i, &abuf[i].key.p, &elem) != 0 ||
		    assay_value_as_string(&elem, &abuf[i].value.p, &abuf[i].value.len) != 0)
			return ASSAY_ERR_REJECT;
		abuf[i].key.len = strlen(abuf[i].key.p);
	}
	ev->attrs = abuf;
	ev->nattrs = n;
	return 0;
}

/* The generic path: the codec, then from_value. rc 0 or the failure. */
static void decode_generic(struct fixture *f, const void *frame, size_t len, struct decoded *x)
{
	char why[512];

	memset(x, 0, sizeof(*x));
	intake_lists_init(&x->lists);
	x->rc = assay_codec_decode(f->codec, frame, len, &x->d, why, sizeof(why));
	x->utf8 = x->rc == ASSAY_ERR_REJECT &&
	          (strstr(why, "invalid utf-8") != NULL || strstr(why, "nul byte") != NULL);
	if (x->rc == 0 && strcmp(x->d.schema->full_name, SUBMITTED) != 0)
		x->rc = ASSAY_ERR_REJECT;
	if (x->rc == 0)
		x->rc = from_value(&x->d.value, &x->ev, &x->lists);
}

static void assert_str_equal(const struct intake_str *a, const struct intake_str *b,
                             const char *what)
{
	if (a->len != b->len || memcmp(a->p, b->p, a->len) != 0)
		fail_msg("%s differs: %zu bytes vs %zu", what, a->len, b->len);
}

static void assert_same_evidence(const struct intake_evidence *a, const struct intake_evidence *b)
{
	assert_str_equal(&a->event_id, &b->event_id, "event_id");
	assert_str_equal(&a->tenant_id, &b->tenant_id, "tenant_id");
	assert_str_equal(&a->audit_id, &b->audit_id, "audit_id");
	assert_str_equal(&a->client_id, &b->client_id, "client_id");
	assert_str_equal(&a->evidence_id, &b->evidence_id, "evidence_id");
	assert_str_equal(&a->source_system, &b->source_system, "source_system");
	assert_str_equal(&a->kind, &b->kind, "kind");
	assert_str_equal(&a->sha256, &b->sha256, "sha256");
	assert_str_equal(&a->uri, &b->uri, "uri");
	assert_int_equal(a->collected_at_ms, b->collected_at_ms);
	assert_int_equal(a->size_bytes, b->size_bytes);
	assert_int_equal(a->ncontrols, b->ncontrols);
	for (size_t i = 0; i < a->ncontrols; i++)
		assert_str_equal(&a->controls[i], &b->controls[i], "claimed control");
	assert_int_equal(a->nattrs, b->nattrs);
	for (size_t i = 0; i < a->nattrs; i++) {
		assert_str_equal(&a->attrs[i].key, &b->attrs[i].key, "attribute key");
		assert_str_equal(&a->attrs[i].value, &b->attrs[i].value, "attribute value");
	}
}

/* What the two paths make of frame: both decode it to the same evidence, or both refuse it
 * (for invalid UTF-8 both). Returns the contract path's rc (0 or ASSAY_ERR_REJECT);
 * *generic_ok (may be NULL) tells whether the generic path decoded it. */
static int compare_paths(struct fixture *f, const void *frame, size_t len, bool *generic_ok)
{
	struct decoded fast, gen;
	void *copy;
	int rc;

	decode_contract(f, frame, len, &fast, &copy);
	decode_generic(f, frame, len, &gen);
	assert_true(fast.rc == 0 || fast.rc == ASSAY_ERR_REJECT);
	if (fast.rc == 0) {
		if (gen.rc != 0)
			fail_msg("the contract decoded a frame the generic path refuses (%d)",
			         gen.rc);
		assert_same_evidence(&fast.ev, &gen.ev);
	} else {
		if (gen.rc == 0)
			fail_msg("the contract refused a frame the generic path decodes");
		assert_int_equal(fast.lists.ncontrols, 0); /* left as it was */
		assert_int_equal(fast.lists.nattrs, 0);
		const char *type = NULL;
		char ignored[256];

		/* invalid UTF-8 is told apart as such (intake's INVALID_UTF8) in frames of an
		 * EvidenceSubmitted writer; another record type is refused as that */
		if (gen.utf8 && !fast.utf8 &&
		    assay_contract_frame_type(f->cx, frame, len, &type, ignored, sizeof(ignored)) ==
		            0 &&
		    strcmp(type, SUBMITTED) == 0)
			fail_msg("the generic path refused invalid utf-8, the contract %s",
			         fast.why);
	}
	if (generic_ok)
		*generic_ok = gen.rc == 0;
	rc = fast.rc;
	decoded_release(&fast);
	decoded_release(&gen);
	free(copy);
	return rc;
}

/* ---- decoding ---- */

static void test_decoder_matches_generic_on_generated_events(void **state)
{
	struct fixture *f = *state;
	struct gen *g = malloc(sizeof(*g));
	struct intake_lists shared;
	size_t done = 0;

	assert_non_null(g);
	intake_lists_init(&shared);
	for (int n = 0; n < 4000; n++) {
		struct intake_evidence ev;
		void *buf = NULL;
		size_t len = 0, before = shared.ncontrols;
		bool generic_ok = false;

		gen_random(f, g, 64);
		gen_encode(f, f->submitted, g, NULL, &buf, &len);
		assert_int_equal(compare_paths(f, buf, len, &generic_ok), 0);
		assert_true(generic_ok);
		/* the values are the generated ones, appended after earlier items' entries */
		{
			struct assay_evidence_submitted sub;
			char why[256];

			assay_arena_reset(&f->arena);
			assert_int_equal(assay_evidence_submitted_decode(f->cx, buf, len, &f->arena,
			                                                 &sub, why, sizeof(why)),
			                 0);
			assert_int_equal(intake_submitted_read(&sub, &ev, &shared), 0);
		}
		assert_int_equal(shared.ncontrols, before + g->ncontrols);
		assert_int_equal(ev.ncontrols, g->ncontrols);
		assert_int_equal(ev.nattrs, g->nattrs);
		assert_int_equal(ev.uri.len, strlen(g->str[7]));
		assert_memory_equal(ev.uri.p, g->str[7], ev.uri.len);
		assert_string_equal(ev.kind.p, assay_evidence_kind_name(g->kind));
		assert_int_equal(ev.size_bytes, g->size_bytes);
		if (g->nattrs) {
			size_t last = g->nattrs - 1;

			assert_int_equal(ev.attrs[last].key.len, strlen(g->keys[last]));
			assert_memory_equal(ev.attrs[last].key.p, g->keys[last],
			                    ev.attrs[last].key.len);
		}
		if (shared.ncontrols > 10000)
			intake_lists_clear(&shared);
		free(buf);
		done++;
	}
	assert_int_equal(done, 4000);
	intake_lists_release(&shared);
	free(g);
}

static void test_many_attributes_decode_alike(void **state)
{
	struct fixture *f = *state;
	struct gen *g = malloc(sizeof(*g));
	void *buf = NULL;
	size_t len = 0;
	bool generic_ok = false;

	assert_non_null(g);
	gen_random(f, g, 0);
	g->nattrs = 65;
	for (size_t i = 0; i < g->nattrs; i++) {
		snprintf(g->keys[i], sizeof(g->keys[i]), "k%zu", i);
		snprintf(g->values[i], sizeof(g->values[i]), "v%zu", i);
	}
	gen_encode(f, f->submitted, g, NULL, &buf, &len);
	assert_int_equal(compare_paths(f, buf, len, &generic_ok), 0);
	assert_true(generic_ok);
	free(buf);
	free(g);
}

static void test_every_truncation_is_refused_by_both(void **state)
{
	struct fixture *f = *state;
	struct gen *g = malloc(sizeof(*g));
	size_t cuts = 0;

	assert_non_null(g);
	for (int n = 0; n < 60; n++) {
		void *buf = NULL;
		size_t len = 0;

		gen_random(f, g, 8);
		gen_encode(f, f->submitted, g, NULL, &buf, &len);
		for (size_t cut = 0; cut < len; cut++) {
			bool generic_ok = true;

			/* a body is self-delimiting: no proper prefix is a value */
			assert_int_equal(compare_paths(f, buf, cut, &generic_ok), ASSAY_ERR_REJECT);
			assert_false(generic_ok);
			cuts++;
		}
		free(buf);
	}
	assert_true(cuts > 1000);
	free(g);
}

static void test_random_mutations_decode_as_the_generic_path_decides(void **state)
{
	struct fixture *f = *state;
	struct gen *g = malloc(sizeof(*g));
	size_t fast_ok = 0, generic_only = 0, refused = 0;

	assert_non_null(g);
	for (int n = 0; n < 300; n++) {
		void *buf = NULL;
		size_t len = 0;

		gen_random(f, g, 6);
		gen_encode(f, f->submitted, g, NULL, &buf, &len);
		for (int m = 0; m < 25; m++) {
			unsigned char *mut = malloc(len + 4);
			size_t mlen = len;
			bool generic_ok = false;
			int rc;

			assert_non_null(mut);
			memcpy(mut, buf, len);
			for (size_t k = 1 + rnd_below(f, 3); k > 0; k--) {
				/* the header rarely, the body mostly */
				size_t at = rnd_below(f, 20) == 0 ? rnd_below(f, 5)
				                                  : 5 + rnd_below(f, mlen - 5);

				switch (rnd_below(f, 5)) {
				case 0: /* a random byte */
					mut[at] = (unsigned char)rnd(f);
					break;
				case 1: /* one bit */
					mut[at] ^= (unsigned char)(1u << rnd_below(f, 8));
					break;
				case 2: /* a byte inserted */
					if (mlen < len + 4) {
						memmove(mut + at + 1, mut + at, mlen - at);
						mut[at] = (unsigned char)rnd(f);
						mlen++;
					}
					break;
				case 3: /* a byte deleted */
					if (mlen > 6) {
						memmove(mut + at, mut + at + 1, mlen - at - 1);
						mlen--;
					}
					break;
				default: /* a small number, e.g. a length or a count */
					mut[at] = (unsigned char)rnd_below(f, 8);
					break;
				}
			}
			rc = compare_paths(f, mut, mlen, &generic_ok);
			if (rc == 0)
				fast_ok++;
			else if (generic_ok)
				generic_only++;
			else
				refused++;
			free(mut);
		}
		free(buf);
	}
	print_message("mutations: %zu decoded alike, %zu refused by both\n", fast_ok, refused);
	assert_int_equal(generic_only, 0); /* compare_paths fails first */
	/* the test means something only when both outcomes occur often */
	assert_true(fast_ok > 500);
	assert_true(refused > 500);
	free(g);
}

/* ---- crafted bodies ---- */

struct body {
	unsigned char b[512];
	size_t n;
};

static void put_byte(struct body *x, unsigned v)
{
	assert_true(x->n < sizeof(x->b));
	x->b[x->n++] = (unsigned char)v;
}

static void put_long(struct body *x, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);

	for (; z >= 0x80; z >>= 7)
		put_byte(x, (unsigned)(z & 0x7f) | 0x80);
	put_byte(x, (unsigned)z);
}

static void put_raw(struct body *x, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put_byte(x, (unsigned char)s[i]);
}

static void put_str(struct body *x, const char *s)
{
	put_long(x, (int64_t)strlen(s));
	put_raw(x, s, strlen(s));
}

/* The frame header with schema id id. */
static void put_header(struct body *x, int32_t id)
{
	x->n = 0;
	put_byte(x, 0);
	put_byte(x, (uint32_t)id >> 24);
	put_byte(x, ((uint32_t)id >> 16) & 0xff);
	put_byte(x, ((uint32_t)id >> 8) & 0xff);
	put_byte(x, (uint32_t)id & 0xff);
}

/* A valid body up to (not including) claimed_controls. */
static void put_scalars(struct body *x, int32_t id)
{
	put_header(x, id);
	put_str(x, "ev-1");
	put_str(x, "cb-1");
	put_long(x, 1700000000000);
	put_str(x, "audit-1");
	put_str(x, "client-1");
	put_str(x, "evidence-1");
	put_str(x, "scanner");
	put_long(x, 2); /* kind LOG_SAMPLE */
	put_long(x, 1700000000000);
	put_str(x, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	put_long(x, 4096);
	put_str(x, "s3://bucket/key");
}

/* Crafted frames, what the fast path must answer and whether the codec decodes them. */
static void test_crafted_bodies(void **state)
{
	struct fixture *f = *state;
	struct body x;
	bool ok;

	/* a plain valid frame: two controls, one attribute */
	put_scalars(&x, f->submitted->id);
	put_long(&x, 2);
	put_str(&x, "ISO27001:A.8.15");
	put_str(&x, "ISO42001:6.1.4");
	put_long(&x, 0);
	put_long(&x, 1);
	put_str(&x, "k");
	put_str(&x, "v");
	put_long(&x, 0);
	assert_int_equal(compare_paths(f, x.b, x.n, &ok), 0);
	assert_true(ok);

	/* two array blocks, and a non-canonical varint (0 as 0x80 0x00) ending the map */
	put_scalars(&x, f->submitted->id);
	put_long(&x, 1);
	put_str(&x, "a");
	put_long(&x, 1);
	put_str(&x, "b");
	put_long(&x, 0);
	put_byte(&x, 0x80);
	put_byte(&x, 0x00);
	assert_int_equal(compare_paths(f, x.b, x.n, &ok), 0);
	assert_true(ok);

	/* a negative block count with its byte size: valid Avro, left to the generic path */
	put_scalars(&x, f->submitted->id);
	put_long(&x, -1);
	put_long(&x, 2);
	put_str(&x, "a");
	put_long(&x, 0);
	put_long(&x, 0);
	assert_int_equal(compare_paths(f, x.b, x.n, &ok), 0);
	assert_true(ok);

	/* duplicate attribute keys: avro-c keeps one entry, so the generic path decides */
	put_scalars(&x, f->submitted->id);
	put_long(&x, 0);
	put_long(&x, 3);
	put_str(&x, "k");
	put_str(&x, "first");
	put_str(&x, "j");
	put_str(&x, "x");
	put_str(&x, "k");
	put_str(&x, "last");
	put_long(&x, 0);
	assert_int_equal(compare_paths(f, x.b, x.n, &ok), 0);
	assert_true(ok);
	{
		struct decoded gen;

		decode_generic(f, x.b, x.n, &gen);
		assert_int_equal(gen.rc, 0);
		assert_int_equal(gen.ev.nattrs, 2); /* the first position, the last value */
		assert_string_equal(gen.ev.attrs[0].key.p, "k");
		assert_string_equal(gen.ev.attrs[0].value.p, "last");
		decoded_release(&gen);
	}

	/* the 10-byte varint of INT64_MIN (last byte 0x01) is a valid long */
	put_header(&x, f->submitted->id);
	put_str(&x, "e");
	put_str(&x, "t");
	put_long(&x, INT64_MIN);
	assert_int_equal(x.b[x.n - 1], 0x01);
	put_str(&x, "a");
	put_str(&x, "c");
	put_str(&x, "i");
	put_str(&x, "s");
	put_long(&x, 9); /* OTHER, the last kind */
	put_long(&x, INT64_MAX);
	put_str(&x, "");
	put_long(&x, INT64_MIN);
	put_str(&x, "");
	put_long(&x, 0);
	put_long(&x, 0);
	assert_int_equal(compare_paths(f, x.b, x.n, &ok), 0);
	assert_true(ok);

	/* refused by both */
	{
		static const struct {
			const char *what;
			const char *bytes; /* after put_scalars, before the controls */
			size_t n;
		} bad[] = {
		        {"negative string length", "\x02\x01", 2},
		        {"string length past the end", "\x02\x7e", 2},
		        {"huge string length", "\x02\xfe\xff\xff\xff\xff\xff\xff\xff\x7f", 10},
		        {"varint of 11 bytes", "\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\x80\x00",
		         12},
		        {"10th varint byte over 1", "\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02",
		         11},
		        {"nul byte", "\x02\x06\x61\x00\x62\x00\x00", 7},
		        {"overlong utf-8", "\x02\x04\xc0\x80\x00\x00", 6},
		        {"utf-16 surrogate", "\x02\x06\xed\xa0\x80\x00\x00", 7},
		        {"over U+10FFFF", "\x02\x08\xf4\x90\x80\x80\x00\x00", 8},
		        {"lone continuation byte", "\x02\x02\x80\x00\x00", 5},
		        {"count past the end", "\x7e\x02\x61", 3},
		        {"trailing byte", "\x00\x00\x00", 3},
		        {"missing map end", "\x00", 1},
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			put_scalars(&x, f->submitted->id);
			put_raw(&x, bad[i].bytes, bad[i].n);
			if (compare_paths(f, x.b, x.n, &ok) != ASSAY_ERR_REJECT || ok)
				fail_msg("%s: not refused", bad[i].what);
		}
	}

	/* kind index out of range, both ways */
	for (int kind = -1; kind <= 10; kind += 11) {
		put_header(&x, f->submitted->id);
		put_str(&x, "e");
		put_str(&x, "t");
		put_long(&x, 0);
		put_str(&x, "a");
		put_str(&x, "c");
		put_str(&x, "i");
		put_str(&x, "s");
		put_long(&x, kind);
		put_long(&x, 0);
		put_str(&x, "");
		put_long(&x, 0);
		put_str(&x, "");
		put_long(&x, 0);
		put_long(&x, 0);
		assert_int_equal(compare_paths(f, x.b, x.n, &ok), ASSAY_ERR_REJECT);
		assert_false(ok);
	}

	/* frames the fast path does not read: short, wrong magic, an unknown schema id */
	put_scalars(&x, f->submitted->id);
	put_long(&x, 0);
	put_long(&x, 0);
	assert_int_equal(compare_paths(f, x.b, x.n, &ok), 0);
	assert_int_equal(compare_paths(f, x.b, 4, &ok), ASSAY_ERR_REJECT);
	x.b[0] = 1;
	assert_int_equal(compare_paths(f, x.b, x.n, &ok), ASSAY_ERR_REJECT);
	assert_false(ok);
	put_scalars(&x, f->submitted->id + 1000);
	put_long(&x, 0);
	put_long(&x, 0);
	assert_int_equal(compare_paths(f, x.b, x.n, &ok), ASSAY_ERR_REJECT);
	assert_false(ok);
}

static void test_frame_over_the_codec_limit_is_refused(void **state)
{
	struct fixture *f = *state;
	struct assay_codec *small;
	struct assay_contracts *cx;
	struct assay_evidence_submitted sub;
	struct body x;
	char errstr[256];

	small = assay_codec_new(f->reg, 40, errstr, sizeof(errstr));
	assert_non_null(small);
	assert_int_equal(assay_codec_register_embedded(small, errstr, sizeof(errstr)), 0);
	cx = assay_contracts_new(small, errstr, sizeof(errstr));
	assert_non_null(cx);
	put_scalars(&x, f->submitted->id);
	put_long(&x, 0);
	put_long(&x, 0);
	assert_true(x.n > 40);
	assay_arena_reset(&f->arena);
	assert_int_equal(assay_evidence_submitted_decode(f->cx, x.b, x.n, &f->arena, &sub, errstr,
	                                                 sizeof(errstr)),
	                 0);
	assert_int_equal(assay_evidence_submitted_decode(cx, x.b, x.n, &f->arena, &sub, errstr,
	                                                 sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(errstr, "too large"));
	assay_contracts_destroy(cx);
	assay_codec_destroy(small);
}

/* ---- other writer schemas ---- */

static const char newer_submitted[] =
        "{\"type\":\"record\",\"name\":\"EvidenceSubmitted\",\"namespace\":\"org.assay.v1\","
        "\"fields\":[{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"tenant_id\",\"type\":\"string\"},"
        "{\"name\":\"occurred_at\",\"type\":\"long\"},"
        "{\"name\":\"audit_id\",\"type\":\"string\"},"
        "{\"name\":\"client_id\",\"type\":\"string\"},"
        "{\"name\":\"evidence_id\",\"type\":\"string\"},"
        "{\"name\":\"source_system\",\"type\":\"string\"},"
        "{\"name\":\"kind\",\"type\":{\"type\":\"enum\",\"name\":\"EvidenceKind\","
        "\"symbols\":[\"CONFIGURATION_SCAN\",\"ACCESS_REVIEW\",\"LOG_SAMPLE\",\"POLICY\","
        "\"TEST_REPORT\",\"MODEL_CARD\",\"BIAS_EVALUATION\",\"DATA_PROVENANCE\","
        "\"ATTESTATION\",\"OTHER\"]}},"
        "{\"name\":\"collected_at\",\"type\":\"long\"},"
        "{\"name\":\"sha256\",\"type\":\"string\"},"
        "{\"name\":\"size_bytes\",\"type\":\"long\"},"
        "{\"name\":\"uri\",\"type\":\"string\"},"
        "{\"name\":\"claimed_controls\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
        "{\"name\":\"attributes\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
        "{\"name\":\"note\",\"type\":[\"null\",\"string\"],\"default\":null}]}";

static void test_newer_writer_schema_decodes_alike(void **state)
{
	struct fixture *f = *state;
	const struct assay_schema *newer = NULL;
	struct gen *g = malloc(sizeof(*g));
	char errstr[256] = "";

	assert_non_null(g);
	if (assay_codec_register(f->codec, newer_submitted, &newer, errstr, sizeof(errstr)) != 0)
		fail_msg("register: %s", errstr);
	assert_true(newer->id != f->submitted->id);
	for (int n = 0; n < 200; n++) {
		void *buf = NULL;
		size_t len = 0;
		bool ok = false;

		gen_random(f, g, 8);
		gen_encode(f, newer, g, n % 2 ? "a note \xc3\xa9" : NULL, &buf, &len);
		assert_int_equal(compare_paths(f, buf, len, &ok), 0);
		assert_true(ok);
		free(buf);
	}
	free(g);
}

/* ---- encoding ---- */

static void test_encoder_writes_avro_c_bytes(void **state)
{
	struct fixture *f = *state;
	static const char *const standards[] = {"ISO27001_2013", "ISO27001_2022", "ISO42001_2023"};
	struct gen *g = malloc(sizeof(*g));
	char *pool = malloc(16 * 1024);
	struct intake_str views[8];
	struct intake_control controls[40];
	char event_id[64], topic[MAX_STR + 1];

	assert_non_null(g);
	assert_non_null(pool);
	for (int n = 0; n < 4000; n++) {
		struct intake_evidence ev;
		struct intake_accepted a;
		struct assay_evidence_accepted out;
		avro_value_t v, arr, elem, src;
		void *buf = NULL;
		size_t len = 0, used = 0;
		char errstr[256] = "", kind[32];

		gen_random(f, g, 0);
		/* the evidence's strings are views into one pool, not NUL-terminated */
		for (int k = 0; k < 8; k++) {
			size_t l = strlen(g->str[k]);

			memcpy(pool + used, g->str[k], l);
			views[k].p = pool + used;
			views[k].len = l;
			used += l;
		}
		memset(pool + used, 'Z', 16);
		memset(&ev, 0, sizeof(ev));
		ev.event_id = views[0];
		ev.tenant_id = views[1];
		ev.audit_id = views[2];
		ev.client_id = views[3];
		ev.evidence_id = views[4];
		ev.source_system = views[5];
		ev.sha256 = views[6];
		ev.uri = views[7];
		/* a kind of the schema, or one newer than it (written as OTHER) */
		snprintf(kind, sizeof(kind), "%s",
		         g->kind == 9 && n % 2 ? "SOMETHING_NEW"
		                               : assay_evidence_kind_name(g->kind));
		ev.kind.p = kind;
		ev.kind.len = strlen(kind);
		ev.collected_at_ms = g->collected_at;
		ev.size_bytes = g->size_bytes;
		ev.ncontrols = g->ncontrols;
		for (size_t i = 0; i < g->ncontrols; i++) {
			controls[i].standard = standards[rnd_below(f, 3)];
			rnd_utf8(f, controls[i].id, sizeof(controls[i].id) - 1);
			controls[i].annex_a = i % 2;
		}
		rnd_utf8(f, event_id, 40);
		rnd_utf8(f, topic, MAX_STR);
		a.event_id = event_id;
		a.occurred_at_ms = g->occurred_at;
		a.ev = &ev;
		a.controls = controls;
		a.topic = topic;
		a.partition = (int32_t)rnd(f);
		a.offset = rnd_long(f);
		assay_arena_reset(&f->arena);
		if (intake_accepted_fill(&a, &f->arena, &out, errstr, sizeof(errstr)) != 0 ||
		    assay_evidence_accepted_encode(f->cx, &out, &f->out, errstr, sizeof(errstr)) !=
		            0)
			fail_msg("contract encode: %s", errstr);

		/* the same through avro-c's generic values (NUL-terminated copies) */
		assert_int_equal(assay_codec_value_new(f->accepted, &v), 0);
		assert_int_equal(assay_value_set_string(&v, "event_id", event_id), 0);
		assert_int_equal(assay_value_set_string(&v, "tenant_id", g->str[1]), 0);
		assert_int_equal(assay_value_set_long(&v, "occurred_at", g->occurred_at), 0);
		assert_int_equal(assay_value_set_string(&v, "audit_id", g->str[2]), 0);
		assert_int_equal(assay_value_set_string(&v, "client_id", g->str[3]), 0);
		assert_int_equal(assay_value_set_string(&v, "evidence_id", g->str[4]), 0);
		assert_int_equal(assay_value_set_string(&v, "submitted_event_id", g->str[0]), 0);
		assert_int_equal(assay_value_set_string(&v, "source_system", g->str[5]), 0);
		assert_int_equal(
		        assay_value_set_enum(&v, "kind",
		                             strcmp(kind, "SOMETHING_NEW") ? kind : "OTHER"),
		        0);
		assert_int_equal(assay_value_set_long(&v, "collected_at", g->collected_at), 0);
		assert_int_equal(assay_value_set_string(&v, "sha256", g->str[6]), 0);
		assert_int_equal(assay_value_set_long(&v, "size_bytes", g->size_bytes), 0);
		assert_int_equal(assay_value_set_string(&v, "uri", g->str[7]), 0);
		assert_int_equal(assay_value_field(&v, "claimed_controls", AVRO_ARRAY, &arr), 0);
		for (size_t i = 0; i < g->ncontrols; i++) {
			assert_int_equal(avro_value_append(&arr, &elem, NULL), 0);
			assert_int_equal(
			        assay_value_set_enum(&elem, "standard", controls[i].standard), 0);
			assert_int_equal(
			        assay_value_set_string(&elem, "control_id", controls[i].id), 0);
		}
		assert_int_equal(assay_value_field(&v, "source", AVRO_RECORD, &src), 0);
		assert_int_equal(assay_value_set_string(&src, "topic", topic), 0);
		assert_int_equal(assay_value_set_int(&src, "partition", a.partition), 0);
		assert_int_equal(assay_value_set_long(&src, "offset", a.offset), 0);
		if (assay_codec_encode(f->codec, f->accepted, &v, &buf, &len, errstr,
		                       sizeof(errstr)) != 0)
			fail_msg("avro-c encode: %s", errstr);
		assert_int_equal(f->out.len, len);
		assert_memory_equal(f->out.data, buf, len);
		free(buf);
		avro_value_decref(&v);
	}
	free(pool);
	free(g);
}

static void test_encoder_refusals(void **state)
{
	struct fixture *f = *state;
	struct assay_evidence_accepted out;
	struct intake_evidence ev;
	struct intake_control c = {"ISO9001_2015", "4.1", false};
	struct intake_accepted a;
	struct assay_codec *small;
	struct assay_contracts *cx;
	char errstr[256] = "";

	memset(&ev, 0, sizeof(ev));
	ev.kind.p = "POLICY";
	ev.kind.len = 6;
	ev.uri.p = "s3://x";
	ev.uri.len = 6;
	ev.ncontrols = 1;
	memset(&a, 0, sizeof(a));
	a.event_id = "e";
	a.ev = &ev;
	a.controls = &c;
	a.topic = "t";
	/* a standard EvidenceAccepted cannot name is our own bug */
	assert_int_equal(intake_accepted_fill(&a, &f->arena, &out, errstr, sizeof(errstr)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(errstr, "ISO9001_2015"));
	/* a frame over the limit is refused as the codec refuses it */
	c.standard = "ISO27001_2022";
	assert_int_equal(intake_accepted_fill(&a, &f->arena, &out, errstr, sizeof(errstr)), 0);
	assert_int_equal(
	        assay_evidence_accepted_encode(f->cx, &out, &f->out, errstr, sizeof(errstr)), 0);
	small = assay_codec_new(f->reg, f->out.len - 1, errstr, sizeof(errstr));
	assert_non_null(small);
	assert_int_equal(assay_codec_register_embedded(small, errstr, sizeof(errstr)), 0);
	cx = assay_contracts_new(small, errstr, sizeof(errstr));
	assert_non_null(cx);
	assert_int_equal(assay_evidence_accepted_encode(cx, &out, &f->out, errstr, sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(errstr, "too large"));
	assay_contracts_destroy(cx);
	assay_codec_destroy(small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_utf8_validation_matches_a_reference),
	        cmocka_unit_test(test_decoder_matches_generic_on_generated_events),
	        cmocka_unit_test(test_many_attributes_decode_alike),
	        cmocka_unit_test(test_every_truncation_is_refused_by_both),
	        cmocka_unit_test(test_random_mutations_decode_as_the_generic_path_decides),
	        cmocka_unit_test(test_crafted_bodies),
	        cmocka_unit_test(test_frame_over_the_codec_limit_is_refused),
	        cmocka_unit_test(test_newer_writer_schema_decodes_alike),
	        cmocka_unit_test(test_encoder_writes_avro_c_bytes),
	        cmocka_unit_test(test_encoder_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
