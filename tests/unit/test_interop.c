/*
 * Interoperability: one event of every schema, encoded by assay's codec, decodes with
 * fastavro (Python), an Avro implementation we did not write, from the .avsc files alone,
 * and re-encodes to the same bytes. `make deps` installs fastavro into a virtual
 * environment; ASSAY_INTEROP_PYTHON names its interpreter.
 */
#include "assay_test.h"
#include "assay_test_codec.h"
#include "assay_codec.h"
#include "assay_embed.h"
#include "assay_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_every_schema_decodes_with_fastavro(void **state)
{
	const char *python = getenv("ASSAY_INTEROP_PYTHON");
	char dir[] = "/tmp/assay-interop-XXXXXX", errstr[512], path[1024], cmd[4096];
	struct assay_registry *reg;
	struct assay_codec *codec;
	FILE *out;
	size_t ok = 0;
	int status;

	(void)state;
	if (python == NULL || access(python, X_OK) != 0)
		fail_msg("ASSAY_INTEROP_PYTHON is not an interpreter with fastavro: run make deps "
		         "and make test (it is set there)");
	assert_non_null(mkdtemp(dir));
	reg = assay_registry_memory_new(errstr, sizeof(errstr));
	assert_non_null(reg);
	codec = assay_codec_new(reg, 1 << 20, errstr, sizeof(errstr));
	assert_non_null(codec);
	assert_int_equal(assay_codec_register_embedded(codec, errstr, sizeof(errstr)), 0);

	for (size_t i = 0; i < assay_embedded_schemas_count; i++) {
		const struct assay_embedded *file = &assay_embedded_schemas[i];
		const struct assay_schema *s = NULL;
		char name[256];
		avro_value_t value;
		void *buf = NULL;
		size_t len = 0;
		FILE *f;

		assert_int_equal(
		        assay_codec_register(codec, file->data, &s, errstr, sizeof(errstr)), 0);
		assert_int_equal(assay_codec_value_new(s, &value), 0);
		assay_test_fill_value(&value, (unsigned)i + 1);
		assert_int_equal(
		        assay_codec_encode(codec, s, &value, &buf, &len, errstr, sizeof(errstr)),
		        0);
		snprintf(name, sizeof(name), "%.*s", (int)(strlen(file->name) - 5), file->name);
		snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
		f = fopen(path, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(buf, 1, len, f), len);
		fclose(f);
		free(buf);
		avro_value_decref(&value);
	}

	snprintf(cmd, sizeof(cmd), "%s %s/tests/interop/fastavro_check.py %s/schemas %s 2>&1",
	         python, ASSAY_SOURCE_DIR, ASSAY_SOURCE_DIR, dir);
	out = popen(cmd, "r");
	assert_non_null(out);
	while (fgets(path, sizeof(path), out) != NULL) {
		if (strncmp(path, "ok ", 3) == 0)
			ok++;
		else
			print_message("fastavro: %s", path);
	}
	status = pclose(out);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(ok, assay_embedded_schemas_count);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	assay_codec_destroy(codec);
	assay_registry_destroy(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_every_schema_decodes_with_fastavro),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
