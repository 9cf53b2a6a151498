/*
 * docs/configuration.md is generated from the settings tables: this test regenerates it and
 * fails when the committed file differs. Run it with ASSAY_WRITE_DOCS=1 to rewrite the file.
 * A service that adds a settings table adds it to `tables` below, after the core table.
 */
#include "assay_test.h"
#include "assay_config.h"
#include "assay_err.h"
#include "assay_service.h"
#include "intake.h"
#include "mapper.h"
#include "plan.h"
#include "risk.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOC_PATH ASSAY_SOURCE_DIR "/docs/configuration.md"

static const struct assay_setting *const tables[] = {
        assay_core_settings, assay_service_settings, plan_settings,
        intake_settings,     mapper_settings,        risk_settings,
};

/* Reads a whole stream into a malloc'd buffer. */
static char *read_all(FILE *fp, size_t *len)
{
	size_t cap = 4096, n = 0, got;
	char *buf = malloc(cap);

	assert_non_null(buf);
	while ((got = fread(buf + n, 1, cap - n, fp)) > 0) {
		n += got;
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	assert_false(ferror(fp));
	*len = n;
	return buf;
}

static void test_docs_up_to_date(void **state)
{
	const char *write_docs = getenv("ASSAY_WRITE_DOCS");
	FILE *gen, *doc;
	char *want, *have;
	size_t want_len, have_len;
	bool same;

	(void)state;
	if (write_docs != NULL && strcmp(write_docs, "1") == 0) {
		doc = fopen(DOC_PATH, "w");
		assert_non_null(doc);
		assert_int_equal(assay_config_write_markdown(doc, tables,
		                                             sizeof(tables) / sizeof(tables[0])),
		                 0);
		assert_int_equal(fclose(doc), 0);
		print_message("wrote %s\n", DOC_PATH);
		return;
	}
	gen = tmpfile();
	assert_non_null(gen);
	assert_int_equal(
	        assay_config_write_markdown(gen, tables, sizeof(tables) / sizeof(tables[0])), 0);
	rewind(gen);
	want = read_all(gen, &want_len);
	fclose(gen);
	doc = fopen(DOC_PATH, "r");
	if (doc == NULL)
		fail_msg("docs/configuration.md is out of date: run with ASSAY_WRITE_DOCS=1 "
		         "(cannot open %s)",
		         DOC_PATH);
	have = read_all(doc, &have_len);
	fclose(doc);
	same = have_len == want_len && memcmp(have, want, want_len) == 0;
	free(want);
	free(have);
	if (!same)
		fail_msg("docs/configuration.md is out of date: run with ASSAY_WRITE_DOCS=1");
}

static void test_markdown_content(void **state)
{
	static const struct assay_setting svc_table[] = {
	        {"svc.name", "ASSAY_SVC_NAME", ASSAY_SETTING_STRING, NULL, 0, 0, 0, "a | b"},
	        {"svc.flag", "ASSAY_SVC_FLAG", ASSAY_SETTING_BOOL, "true", 0, 0, 0, "flag"},
	        {0},
	};
	const struct assay_setting *const two[] = {assay_core_settings, svc_table};
	FILE *gen = tmpfile();
	char *text;
	size_t len;

	(void)state;
	assert_non_null(gen);
	assert_int_equal(assay_config_write_markdown(gen, two, 2), 0);
	rewind(gen);
	text = read_all(gen, &len);
	fclose(gen);
	text = realloc(text, len + 1);
	assert_non_null(text);
	text[len] = '\0';
	assert_non_null(strstr(text, "## Core settings (every service)\n"));
	assert_non_null(strstr(text, "| `batch.max.messages` | `ASSAY_BATCH_MAX_MESSAGES` | "
	                             "integer | `1000` | 1..100000 | "));
	assert_non_null(strstr(text, "| `instance.id` | `ASSAY_INSTANCE_ID` | string | *(empty)* "
	                             "|  | "));
	assert_non_null(strstr(text, "## Settings table 2\n"));
	assert_non_null(strstr(text, "| `svc.name` | `ASSAY_SVC_NAME` | string | *(required)* |  "
	                             "| a \\| b |\n"));
	assert_non_null(strstr(text, "| `svc.flag` | `ASSAY_SVC_FLAG` | boolean | `true` | true, "
	                             "false | flag |\n"));
	assert_true(strstr(text, "## Core settings") < strstr(text, "## Settings table 2"));
	assert_non_null(strstr(text, "ASSAY_KAFKA_PROPERTIES"));
	free(text);
	assert_int_equal(assay_config_write_markdown(NULL, two, 2), ASSAY_ERR_FATAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_docs_up_to_date),
	        cmocka_unit_test(test_markdown_content),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
