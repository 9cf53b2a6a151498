/*
 * The generated contracts (services/domain/contracts, tools/avrogen) against avro-c, for EVERY
 * schema in schemas/, over an in-memory registry:
 *   - a value avro-c encodes (every field set, then every union null) decodes with the
 *     generated code and with the descriptor/plan walk to a struct equal field by field to
 *     avro-c's own decoding, and both encoders write exactly avro-c's bytes back;
 *   - every truncation of such a frame is refused, and thousands of seeded mutations are
 *     refused exactly when the codec refuses them, decoding alike otherwise (frames are
 *     exact-size copies, so ASan sees any over-read);
 *   - crafted bodies (negative and huge lengths, bad UTF-8, NUL, bad indexes, trailing bytes,
 *     bad frames, the size limit) are refused with their reason;
 *   - enum _name and _parse round trip; the encoder refuses an enum outside its symbols.
 */
#include "assay_test.h"
#include "assay_test_codec.h"
#include "contract_all.h"

#include "assay_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT (1 << 20)

struct fixture {
	struct assay_registry *reg;
	struct assay_codec *codec;
	struct assay_contracts *cx;
	struct assay_arena arena;
	struct assay_contract_buf buf;
	uint64_t rng;
	long accepted, refused; /* by check_both */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char errstr[256] = "";

	if (f == NULL)
		return -1;
	f->reg = assay_registry_memory_new(errstr, sizeof(errstr));
	f->codec = f->reg ? assay_codec_new(f->reg, LIMIT, errstr, sizeof(errstr)) : NULL;
	if (f->codec == NULL ||
	    assay_codec_register_embedded(f->codec, errstr, sizeof(errstr)) != 0 ||
	    (f->cx = assay_contracts_new(f->codec, errstr, sizeof(errstr))) == NULL) {
		fprintf(stderr, "setup: %s\n", errstr);
		assay_codec_destroy(f->codec);
		assay_registry_destroy(f->reg);
		free(f);
		return -1;
	}
	assay_arena_init(&f->arena);
	assay_contract_buf_init(&f->buf);
	f->rng = 0x9e3779b97f4a7c15ULL;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assay_contract_buf_release(&f->buf);
	assay_arena_release(&f->arena);
	assay_contracts_destroy(f->cx);
	assay_codec_destroy(f->codec);
	assay_registry_destroy(f->reg);
	free(f);
	return 0;
}

static uint64_t rnd(struct fixture *f)
{
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 0x2545f4914f6cdd1dULL;
}

/* ---- field-by-field comparison of avro-c's decoding with the generated one ---- */

static void compare_value(avro_value_t *v, const struct assay_ct_type *t, const unsigned char *src);

static void compare_str(const char *s, size_t size, const unsigned char *src)
{
	struct assay_str got;

	memcpy(&got, src, sizeof(got));
	assert_int_equal(got.len, size);
	if (size > 0)
		assert_memory_equal(got.s, s, size);
}

static void compare_record(avro_value_t *v, const struct assay_ct_type *t, const unsigned char *src)
{
	for (size_t i = 0; i < t->nfields; i++) {
		const struct assay_ct_field *fd = &t->fields[i];
		avro_value_t fv, branch;

		assert_int_equal(avro_value_get_by_name(v, fd->name, &fv, NULL), 0);
		if (fd->optional) {
			int disc;
			bool present;

			assert_int_equal(avro_value_get_discriminant(&fv, &disc), 0);
			memcpy(&present, src + fd->present_offset, sizeof(present));
			assert_int_equal(present, disc == 1);
			if (!present)
				continue;
			assert_int_equal(avro_value_get_current_branch(&fv, &branch), 0);
			fv = branch;
		}
		compare_value(&fv, fd->type, src + fd->offset);
	}
}

static void compare_value(avro_value_t *v, const struct assay_ct_type *t, const unsigned char *src)
{
	switch (t->kind) {
	case ASSAY_CT_BOOLEAN: {
		int b;
		bool got;

		assert_int_equal(avro_value_get_boolean(v, &b), 0);
		memcpy(&got, src, sizeof(got));
		assert_int_equal(got, b != 0);
		break;
	}
	case ASSAY_CT_INT:
	case ASSAY_CT_ENUM: {
		int32_t want, got;

		if (t->kind == ASSAY_CT_INT)
			assert_int_equal(avro_value_get_int(v, &want), 0);
		else
			assert_int_equal(avro_value_get_enum(v, &want), 0);
		memcpy(&got, src, sizeof(got));
		assert_int_equal(got, want);
		break;
	}
	case ASSAY_CT_LONG: {
		int64_t want, got;

		assert_int_equal(avro_value_get_long(v, &want), 0);
		memcpy(&got, src, sizeof(got));
		assert_true(got == want);
		break;
	}
	case ASSAY_CT_FLOAT: {
		float want;

		assert_int_equal(avro_value_get_float(v, &want), 0);
		assert_memory_equal(src, &want, sizeof(want));
		break;
	}
	case ASSAY_CT_DOUBLE: {
		double want;

		assert_int_equal(avro_value_get_double(v, &want), 0);
		assert_memory_equal(src, &want, sizeof(want));
		break;
	}
	case ASSAY_CT_STRING: {
		const char *s;
		size_t size;

		assert_int_equal(avro_value_get_string(v, &s, &size), 0);
		compare_str(s, size - 1, src); /* avro-c counts the NUL */
		break;
	}
	case ASSAY_CT_BYTES: {
		const void *p;
		size_t size;
		struct assay_bytes got;

		assert_int_equal(avro_value_get_bytes(v, &p, &size), 0);
		memcpy(&got, src, sizeof(got));
		assert_int_equal(got.len, size);
		if (size > 0)
			assert_memory_equal(got.p, p, size);
		break;
	}
	case ASSAY_CT_RECORD:
		compare_record(v, t, src);
		break;
	case ASSAY_CT_ARRAY: {
		unsigned char *items;
		size_t count, want;

		memcpy(&items, src, sizeof(items));
		memcpy(&count, src + sizeof(void *), sizeof(count));
		assert_int_equal(avro_value_get_size(v, &want), 0);
		assert_int_equal(count, want);
		for (size_t i = 0; i < count; i++) {
			avro_value_t item;

			assert_int_equal(avro_value_get_by_index(v, i, &item, NULL), 0);
			compare_value(&item, t->items, items + i * t->items->size);
		}
		break;
	}
	case ASSAY_CT_MAP: {
		/* entries in wire order, duplicates kept; avro-c keeps a key once, with the last
		 * value: each avro-c entry is our last entry of that key */
		struct assay_str *keys;
		unsigned char *values;
		size_t count, want;

		memcpy(&keys, src, sizeof(keys));
		memcpy(&values, src + sizeof(void *), sizeof(values));
		memcpy(&count, src + 2 * sizeof(void *), sizeof(count));
		assert_int_equal(avro_value_get_size(v, &want), 0);
		assert_true(count >= want);
		for (size_t i = 0; i < want; i++) {
			avro_value_t item;
			const char *key;
			size_t last = count;

			assert_int_equal(avro_value_get_by_index(v, i, &item, &key), 0);
			for (size_t k = 0; k < count; k++)
				if (keys[k].len == strlen(key) &&
				    memcmp(keys[k].s, key, keys[k].len) == 0)
					last = k;
			assert_true(last < count);
			compare_value(&item, t->items, values + last * t->items->size);
		}
		break;
	}
	default:
		fail_msg("unexpected kind %d", (int)t->kind);
	}
}

/* ---- helpers ---- */

/* avro-c's frame of a value of root filled with seed (nulls: every union null then). */
static void avroc_frame(struct fixture *f, const struct assay_ct_type *root, unsigned seed,
                        bool nulls, void **frame, size_t *len)
{
	const struct assay_schema *s;
	avro_value_t v;
	char errstr[256] = "";

	assert_int_equal(
	        assay_codec_schema_by_name(f->codec, root->name, &s, errstr, sizeof(errstr)), 0);
	assert_int_equal(assay_codec_value_new(s, &v), 0);
	assay_test_fill_value(&v, seed);
	if (nulls)
		assay_test_null_every_union(&v);
	assay_test_avroc_frame(s->id, &v, frame, len);
	avro_value_decref(&v);
}

/* Decodes frame with avro-c (the codec) and with the contracts, both the generated code and
 * the descriptor/plan walk: when the codec accepts, each decoding must equal avro-c's field by
 * field; when it refuses, each must refuse too. */
static void check_both(struct fixture *f, const struct assay_ct_type *root, const void *frame,
                       size_t len)
{
	struct assay_decoded d;
	char e1[256] = "";
	unsigned char *out = malloc(root->size);
	int rc1 = assay_codec_decode(f->codec, frame, len, &d, e1, sizeof(e1));

	assert_non_null(out);
	for (int generated = 1; generated >= 0; generated--) {
		char e2[256] = "";
		int rc2;

		assay_contracts_set_generated(f->cx, generated);
		assay_arena_reset(&f->arena);
		rc2 = assay_contract_decode(f->cx, root, frame, len, &f->arena, out, e2,
		                            sizeof(e2));
		if (rc1 != 0) {
			if (rc2 == 0)
				fail_msg("%s: codec refuses (%s), %s decoder accepts", root->name,
				         e1, generated ? "generated" : "plan");
			assert_int_equal(rc2, ASSAY_ERR_REJECT);
			assert_true(e2[0] != '\0');
		} else {
			if (rc2 != 0)
				fail_msg("%s: codec accepts, %s decoder refuses: %s", root->name,
				         generated ? "generated" : "plan", e2);
			compare_value(&d.value, root, out);
		}
	}
	assay_contracts_set_generated(f->cx, true);
	if (rc1 == 0) {
		assay_decoded_release(&d);
		f->accepted++;
	} else {
		f->refused++;
	}
	free(out);
}

/* ---- tests ---- */

/* Every schema: avro-c's bytes -> generated struct (equal to avro-c's value) -> same bytes. */
static void test_every_schema_round_trip(void **state)
{
	struct fixture *f = *state;
	char errstr[256] = "";

	assert_int_equal(assay_contract_nroots, 31);
	for (size_t r = 0; r < assay_contract_nroots; r++) {
		const struct assay_ct_type *root = assay_contract_roots[r];

		for (unsigned seed = 0; seed < 9; seed++) {
			void *frame;
			size_t len;
			unsigned char *out = malloc(root->size);

			assert_non_null(out);
			avroc_frame(f, root, seed, seed == 8, &frame, &len);
			check_both(f, root, frame, len);
			for (int generated = 1; generated >= 0; generated--) {
				assay_contracts_set_generated(f->cx, generated);
				assay_arena_reset(&f->arena);
				if (assay_contract_decode(f->cx, root, frame, len, &f->arena, out,
				                          errstr, sizeof(errstr)) != 0)
					fail_msg("%s: %s", root->name, errstr);
				if (assay_contract_encode(f->cx, root, out, &f->buf, errstr,
				                          sizeof(errstr)) != 0)
					fail_msg("%s: %s", root->name, errstr);
				if (f->buf.len != len || memcmp(f->buf.data, frame, len) != 0)
					fail_msg("%s seed %u: %s encoding differs from avro-c's",
					         root->name, seed,
					         generated ? "generated" : "plan");
			}
			assay_contracts_set_generated(f->cx, true);
			free(out);
			free(frame);
		}
	}
}

/* Every truncation of every schema's frame is refused; mutations decide alike. */
static void test_truncations_and_mutations(void **state)
{
	struct fixture *f = *state;
	long mutations = 0;

	for (size_t r = 0; r < assay_contract_nroots; r++) {
		const struct assay_ct_type *root = assay_contract_roots[r];
		bool hot = strstr(root->name, "Evidence") != NULL;
		void *frame;
		size_t len;

		avroc_frame(f, root, (unsigned)r, false, &frame, &len);
		for (size_t n = 0; n < len; n++) {
			unsigned char *cut = malloc(n ? n : 1);
			char errstr[256] = "";
			unsigned char *out = malloc(root->size);

			memcpy(cut, frame, n);
			assay_arena_reset(&f->arena);
			assert_int_equal(assay_contract_decode(f->cx, root, n ? cut : NULL, n,
			                                       &f->arena, out, errstr,
			                                       sizeof(errstr)),
			                 ASSAY_ERR_REJECT);
			free(out);
			free(cut);
		}
		for (int m = 0; m < (hot ? 3000 : 300); m++) {
			unsigned char *mut = malloc(len);
			int flips = 1 + (int)(rnd(f) % 3);

			memcpy(mut, frame, len);
			for (int k = 0; k < flips; k++) {
				/* the body mostly; the header now and then */
				size_t at =
				        rnd(f) % 16 == 0
				                ? rnd(f) % len
				                : ASSAY_CODEC_HEADER_SIZE +
				                          rnd(f) % (len - ASSAY_CODEC_HEADER_SIZE);

				mut[at] = rnd(f) % 4 == 0 ? (unsigned char)(mut[at] ^ 0x80)
				                          : (unsigned char)rnd(f);
			}
			check_both(f, root, mut, len);
			free(mut);
			mutations++;
		}
		free(frame);
	}
	assert_true(mutations > 10000);
	/* both outcomes occur: mutations of lengths and indexes refused, of content accepted */
	assert_true(f->accepted > 1000);
	assert_true(f->refused > 1000);
}

/* A frame of EvidenceSubmitted's id with body bytes of our choosing. */
static size_t craft(struct fixture *f, unsigned char *out, const unsigned char *body, size_t n)
{
	const struct assay_schema *s;
	char errstr[256];

	assert_int_equal(assay_codec_schema_by_name(f->codec, assay_evidence_submitted_type.name,
	                                            &s, errstr, sizeof(errstr)),
	                 0);
	out[0] = 0;
	out[1] = (unsigned char)((uint32_t)s->id >> 24);
	out[2] = (unsigned char)((uint32_t)s->id >> 16);
	out[3] = (unsigned char)((uint32_t)s->id >> 8);
	out[4] = (unsigned char)s->id;
	memcpy(out + 5, body, n);
	return n + 5;
}

static void expect_reject(struct fixture *f, const unsigned char *frame, size_t len,
                          const char *reason)
{
	struct assay_evidence_submitted ev;
	char errstr[256] = "";
	int rc;

	assay_arena_reset(&f->arena);
	rc = assay_evidence_submitted_decode(f->cx, frame, len, &f->arena, &ev, errstr,
	                                     sizeof(errstr));
	if (rc != ASSAY_ERR_REJECT || strstr(errstr, reason) == NULL)
		fail_msg("want reject with \"%s\", got rc %d: %s", reason, rc, errstr);
	check_both(f, &assay_evidence_submitted_type, frame, len);
}

static void test_crafted_bodies(void **state)
{
	struct fixture *f = *state;
	/* event_id "a", tenant_id "b", occurred_at 1, audit_id .. uri "x", kind 0, ... */
	static const unsigned char good[] = {2,   'a', 2,   'b', 2, 2, 'c', 2, 'd', 2,
	                                     'e', 2,   'f', 0,   2, 2, 'g', 2, 2,   'u',
	                                     2,   2,   'k', 0,   2, 2, 'k', 2, 'v', 0};
	unsigned char body[sizeof(good) + 8], frame[sizeof(good) + 32];
	struct assay_evidence_submitted ev;
	char errstr[256] = "";
	size_t n;

	n = craft(f, frame, good, sizeof(good));
	assay_arena_reset(&f->arena);
	assert_int_equal(assay_evidence_submitted_decode(f->cx, frame, n, &f->arena, &ev, errstr,
	                                                 sizeof(errstr)),
	                 0);
	assert_int_equal(ev.claimed_controls.count, 1);
	assert_int_equal(ev.attributes.count, 1);
	assert_memory_equal(ev.attributes.values[0].s, "v", 1);
	assert_int_equal(ev.kind, ASSAY_EVIDENCE_KIND_CONFIGURATION_SCAN);

	memcpy(body, good, sizeof(good));
	body[0] = 1; /* length -1 */
	expect_reject(f, frame, craft(f, frame, body, sizeof(good)), "negative length");
	memcpy(body, good, sizeof(good));
	body[0] = 0x7e; /* length 63 */
	expect_reject(f, frame, craft(f, frame, body, sizeof(good)), "truncated string");
	memcpy(body, good, sizeof(good));
	body[1] = 0xff;
	expect_reject(f, frame, craft(f, frame, body, sizeof(good)), "invalid utf-8");
	memcpy(body, good, sizeof(good));
	body[1] = 0;
	expect_reject(f, frame, craft(f, frame, body, sizeof(good)), "nul byte");
	memcpy(body, good, sizeof(good));
	body[13] = 20; /* kind 10 of 10 symbols */
	expect_reject(f, frame, craft(f, frame, body, sizeof(good)), "enum index 10 out of range");
	memcpy(body, good, sizeof(good));
	body[sizeof(good)] = 0;
	expect_reject(f, frame, craft(f, frame, body, sizeof(good) + 1), "trailing bytes");
	memcpy(body, good, sizeof(good));
	body[21] = 0x81; /* block count runs past the end */
	expect_reject(f, frame, craft(f, frame, body, 22), "truncated");
	memcpy(body, good, sizeof(good));
	memset(body + 4, 0xff, 11); /* occurred_at varint of 11 bytes */
	expect_reject(f, frame, craft(f, frame, body, sizeof(good)), "varint");

	n = craft(f, frame, good, sizeof(good));
	frame[0] = 1;
	expect_reject(f, frame, n, "wrong magic byte");
	frame[0] = 0;
	expect_reject(f, frame, 3, "short frame");
	expect_reject(f, frame, 0, "empty frame");
	frame[1] = 0x7f;
	expect_reject(f, frame, n, "unknown");
	{
		unsigned char *big = calloc(1, LIMIT + 1);

		expect_reject(f, big, LIMIT + 1, "message too large");
		free(big);
	}
}

static void test_enum_name_parse(void **state)
{
	enum assay_evidence_kind k;
	enum assay_standard s;

	for (int i = 0; i < ASSAY_EVIDENCE_KIND_NSYMBOLS; i++) {
		const char *name = assay_evidence_kind_name((enum assay_evidence_kind)i);

		assert_non_null(name);
		assert_int_equal(assay_evidence_kind_parse(name, strlen(name), &k), 0);
		assert_int_equal(k, i);
	}
	assert_null(
	        assay_evidence_kind_name((enum assay_evidence_kind)ASSAY_EVIDENCE_KIND_NSYMBOLS));
	assert_null(assay_evidence_kind_name((enum assay_evidence_kind) - 1));
	assert_int_equal(assay_evidence_kind_parse("OTHERS", 6, &k), ASSAY_ERR_REJECT);
	assert_int_equal(assay_evidence_kind_parse("OTHERS", 5, &k), 0); /* a prefix view */
	assert_int_equal(k, ASSAY_EVIDENCE_KIND_OTHER);
	assert_int_equal(assay_evidence_kind_parse("OTHE", 4, &k), ASSAY_ERR_REJECT);
	assert_int_equal(assay_standard_parse("ISO42001_2023", 13, &s), 0);
	assert_int_equal(s, ASSAY_STANDARD_ISO42001_2023);
	assert_string_equal(assay_standard_name(ASSAY_STANDARD_ISO27001_2022), "ISO27001_2022");
	assert_int_equal(assay_evidence_kind_type.default_symbol, ASSAY_EVIDENCE_KIND_OTHER);
	assert_int_equal(assay_standard_type.default_symbol, -1);
}

static void test_encode_refusals(void **state)
{
	struct fixture *f = *state;
	struct assay_evidence_accepted a;
	char errstr[256] = "";
	struct assay_str big = {NULL, 0};

	memset(&a, 0, sizeof(a));
	a.kind = (enum assay_evidence_kind)42;
	assert_int_equal(assay_evidence_accepted_encode(f->cx, &a, &f->buf, errstr, sizeof(errstr)),
	                 ASSAY_ERR_FATAL);
	assert_non_null(strstr(errstr, "not a symbol"));
	a.kind = ASSAY_EVIDENCE_KIND_POLICY;
	a.uri.len = 5; /* NULL view with a length */
	assert_int_equal(assay_evidence_accepted_encode(f->cx, &a, &f->buf, errstr, sizeof(errstr)),
	                 ASSAY_ERR_FATAL);
	big.s = calloc(1, LIMIT);
	big.len = LIMIT;
	a.uri = big;
	assert_int_equal(assay_evidence_accepted_encode(f->cx, &a, &f->buf, errstr, sizeof(errstr)),
	                 ASSAY_ERR_REJECT);
	assert_non_null(strstr(errstr, "message too large"));
	free((void *)big.s);
	a.uri.s = "u";
	a.uri.len = 1;
	assert_int_equal(assay_evidence_accepted_encode(f->cx, &a, &f->buf, errstr, sizeof(errstr)),
	                 0);
	check_both(f, &assay_evidence_accepted_type, f->buf.data, f->buf.len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_every_schema_round_trip),
	        cmocka_unit_test(test_truncations_and_mutations),
	        cmocka_unit_test(test_crafted_bodies),
	        cmocka_unit_test(test_enum_name_parse),
	        cmocka_unit_test(test_encode_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
