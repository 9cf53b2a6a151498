/*
 * Schema registry: normalization and fingerprinting of schema text, and two backends.
 *
 * assay_registry_register parses the text with avro-c, writes it back with
 * avro_schema_to_json (the normalized text), fingerprints that with SHA-256 and asks the
 * backend for the id. The PostgreSQL backend inserts into assay_schemas with ON CONFLICT
 * (fingerprint) DO NOTHING and then selects the row, so two connections registering the same
 * text at once both end up with the one committed id. The memory backend keeps a plain array.
 */
#include "assay_registry.h"
#include "assay_vec.h"
#include "assay_err.h"

#include <errno.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NORMALIZE_MAX (16u << 20) /* schema text larger than this is refused */

struct assay_registry {
	const struct assay_registry_backend *backend;
	void *impl;
};

struct assay_registry *assay_registry_new(const struct assay_registry_backend *backend, void *impl,
                                          char *errstr, size_t errstr_size)
{
	struct assay_registry *reg = calloc(1, sizeof(*reg));

	if (reg == NULL) {
		backend->destroy(impl);
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "registry: out of memory");
		return NULL;
	}
	reg->backend = backend;
	reg->impl = impl;
	return reg;
}

void assay_registry_destroy(struct assay_registry *reg)
{
	if (reg == NULL)
		return;
	reg->backend->destroy(reg->impl);
	free(reg);
}

int assay_registry_normalize(avro_schema_t schema, char **text, size_t *len, char *errstr,
                             size_t errstr_size)
{
	size_t size = 4096;

	for (;;) {
		char *buf = malloc(size);
		avro_writer_t writer;
		int64_t used;
		int rc;

		if (buf == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "schema normalize: out of memory");
		writer = avro_writer_memory(buf, (int64_t)size - 1);
		if (writer == NULL) {
			free(buf);
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "schema normalize: out of memory");
		}
		rc = avro_schema_to_json(schema, writer);
		used = avro_writer_tell(writer);
		avro_writer_free(writer);
		if (rc == 0) {
			buf[used] = '\0';
			*text = buf;
			if (len != NULL)
				*len = (size_t)used;
			return 0;
		}
		free(buf);
		if (rc != ENOSPC || size >= NORMALIZE_MAX)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "schema normalize: %s", avro_strerror());
		size *= 2;
	}
}

const char *assay_registry_full_name(avro_schema_t schema, char *buf, size_t size)
{
	const char *ns;

	if (size == 0)
		return buf;
	if (!is_avro_named_type(schema)) {
		snprintf(buf, size, "%s", avro_schema_type_name(schema));
		return buf;
	}
	ns = avro_schema_namespace(schema);
	if (ns != NULL && *ns != '\0')
		snprintf(buf, size, "%s.%s", ns, avro_schema_name(schema));
	else
		snprintf(buf, size, "%s", avro_schema_name(schema));
	return buf;
}

int assay_registry_register_schema(struct assay_registry *reg, avro_schema_t schema, int32_t *id,
                                   char *errstr, size_t errstr_size)
{
	unsigned char fingerprint[ASSAY_REGISTRY_FINGERPRINT_SIZE];
	unsigned int fingerprint_len = 0;
	char full_name[512];
	char *text = NULL;
	size_t len = 0;
	int rc;

	rc = assay_registry_normalize(schema, &text, &len, errstr, errstr_size);
	if (rc != 0)
		return rc;
	if (EVP_Digest(text, len, fingerprint, &fingerprint_len, EVP_sha256(), NULL) != 1 ||
	    fingerprint_len != sizeof(fingerprint)) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "schema fingerprint: sha-256 failed");
		goto out;
	}
	assay_registry_full_name(schema, full_name, sizeof(full_name));
	rc = reg->backend->register_text(reg->impl, text, len, full_name, fingerprint, id, errstr,
	                                 errstr_size);
out:
	free(text);
	return rc;
}

int assay_registry_register(struct assay_registry *reg, const char *schema_json, int32_t *id,
                            char *errstr, size_t errstr_size)
{
	avro_schema_t schema = NULL;
	int rc;

	if (avro_schema_from_json_length(schema_json, strlen(schema_json), &schema) != 0)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size, "schema parse: %s",
		                  avro_strerror());
	rc = assay_registry_register_schema(reg, schema, id, errstr, errstr_size);
	avro_schema_decref(schema);
	return rc;
}

int assay_registry_lookup(struct assay_registry *reg, int32_t id, char **schema_json, char *errstr,
                          size_t errstr_size)
{
	if (id <= 0)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size, "unknown schema id %d",
		                  (int)id);
	return reg->backend->lookup(reg->impl, id, schema_json, errstr, errstr_size);
}

/*
 * Memory backend.
 */

struct mem_entry {
	char *text;
	size_t len;
	unsigned char fingerprint[ASSAY_REGISTRY_FINGERPRINT_SIZE];
};

struct mem_registry {
	struct mem_entry *entries;
	size_t count;
	size_t cap;
};

static int mem_register(void *impl, const char *text, size_t text_len, const char *full_name,
                        const unsigned char fingerprint[ASSAY_REGISTRY_FINGERPRINT_SIZE],
                        int32_t *id, char *errstr, size_t errstr_size)
{
	struct mem_registry *mem = impl;
	struct mem_entry *e;

	for (size_t i = 0; i < mem->count; i++) {
		e = &mem->entries[i];
		if (memcmp(e->fingerprint, fingerprint, sizeof(e->fingerprint)) == 0 &&
		    e->len == text_len && memcmp(e->text, text, text_len) == 0) {
			*id = (int32_t)(i + 1);
			return 0;
		}
	}
	if (mem->count >= INT32_MAX)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "registry: ids exhausted");
	if (assay_vec_reserve(&mem->entries, &mem->cap, mem->count + 1, sizeof(*mem->entries)))
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "registry: out of memory");
	e = &mem->entries[mem->count];
	e->text = malloc(text_len + 1);
	if (e->text == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "registry: out of memory");
	memcpy(e->text, text, text_len);
	e->text[text_len] = '\0';
	e->len = text_len;
	memcpy(e->fingerprint, fingerprint, sizeof(e->fingerprint));
	mem->count++;
	*id = (int32_t)mem->count;
	(void)full_name;
	return 0;
}

static int mem_lookup(void *impl, int32_t id, char **text, char *errstr, size_t errstr_size)
{
	struct mem_registry *mem = impl;
	struct mem_entry *e;

	if (id <= 0 || (size_t)id > mem->count)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size, "unknown schema id %d",
		                  (int)id);
	e = &mem->entries[id - 1];
	*text = malloc(e->len + 1);
	if (*text == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "registry: out of memory");
	memcpy(*text, e->text, e->len + 1);
	return 0;
}

static void mem_destroy(void *impl)
{
	struct mem_registry *mem = impl;

	if (mem == NULL)
		return;
	for (size_t i = 0; i < mem->count; i++)
		free(mem->entries[i].text);
	free(mem->entries);
	free(mem);
}

static const struct assay_registry_backend mem_backend = {
        .name = "memory",
        .register_text = mem_register,
        .lookup = mem_lookup,
        .destroy = mem_destroy,
};

struct assay_registry *assay_registry_memory_new(char *errstr, size_t errstr_size)
{
	struct mem_registry *mem = calloc(1, sizeof(*mem));

	if (mem == NULL) {
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "registry: out of memory");
		return NULL;
	}
	return assay_registry_new(&mem_backend, mem, errstr, errstr_size);
}

/*
 * PostgreSQL backend.
 */

struct pg_registry {
	char *url;
	PGconn *conn; /* NULL until first use and after a connection failure */
};

/* errstr gets "what: message" with libpq's newlines and tabs folded into spaces. */
static int pg_errf(int err, char *errstr, size_t errstr_size, const char *what, const char *msg)
{
	size_t n;

	if (errstr == NULL || errstr_size == 0)
		return err;
	assay_errf(err, errstr, errstr_size, "%s: %s", what, msg ? msg : "no message");
	for (char *p = errstr; *p != '\0'; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	n = strlen(errstr);
	while (n > 0 && errstr[n - 1] == ' ')
		errstr[--n] = '\0';
	return err;
}

static void pg_disconnect(struct pg_registry *pg)
{
	PQfinish(pg->conn);
	pg->conn = NULL;
}

static int pg_connect(struct pg_registry *pg, char *errstr, size_t errstr_size)
{
	/* keywords after dbname override what its expansion sets, so defaults come first */
	const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *const values[] = {"10", "assay-registry", pg->url, NULL};

	if (pg->conn != NULL)
		return 0;
	pg->conn = PQconnectdbParams(keys, values, 1);
	if (pg->conn == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "registry connect: out of memory");
	if (PQstatus(pg->conn) != CONNECTION_OK) {
		pg_errf(ASSAY_ERR_RETRY, errstr, errstr_size, "registry connect",
		        PQerrorMessage(pg->conn));
		pg_disconnect(pg);
		return ASSAY_ERR_RETRY;
	}
	return 0;
}

/* Transient SQLSTATEs: connection exceptions, serialization failures and deadlocks,
 * insufficient resources, operator intervention (shutdown, crash recovery). */
static bool pg_sqlstate_transient(const char *state)
{
	if (state == NULL)
		return true; /* no answer from the server at all */
	return strncmp(state, "08", 2) == 0 || strcmp(state, "40001") == 0 ||
	       strcmp(state, "40P01") == 0 || strncmp(state, "53", 2) == 0 ||
	       strncmp(state, "57P", 3) == 0;
}

/* Classifies a failed result (res may be NULL), drops a dead connection, fills errstr. */
static int pg_fail(struct pg_registry *pg, PGresult *res, const char *what, char *errstr,
                   size_t errstr_size)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(pg->conn);
	int err = ASSAY_ERR_FATAL;

	if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(pg->conn);
	if (PQstatus(pg->conn) == CONNECTION_BAD || pg_sqlstate_transient(state))
		err = ASSAY_ERR_RETRY;
	pg_errf(err, errstr, errstr_size, what, msg);
	if (PQstatus(pg->conn) == CONNECTION_BAD)
		pg_disconnect(pg);
	return err;
}

static int pg_parse_id(const char *s, int32_t *id)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > INT32_MAX)
		return -1;
	*id = (int32_t)v;
	return 0;
}

static int pg_register_once(struct pg_registry *pg, const char *text, size_t text_len,
                            const char *full_name,
                            const unsigned char fingerprint[ASSAY_REGISTRY_FINGERPRINT_SIZE],
                            int32_t *id, char *errstr, size_t errstr_size)
{
	static const char insert_sql[] =
	        "INSERT INTO assay_schemas (fingerprint, full_name, schema_text) "
	        "VALUES ($1, $2, $3) ON CONFLICT (fingerprint) DO NOTHING RETURNING id";
	/* a new statement, so a row committed by a concurrent registration is visible */
	static const char select_sql[] =
	        "SELECT id, schema_text FROM assay_schemas WHERE fingerprint = $1";
	const char *params[3] = {(const char *)fingerprint, full_name, text};
	const int lengths[3] = {ASSAY_REGISTRY_FINGERPRINT_SIZE, 0, 0};
	const int formats[3] = {1, 0, 0};
	PGresult *res = NULL;
	int rc = 0;

	res = PQexecParams(pg->conn, insert_sql, 3, NULL, params, lengths, formats, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = pg_fail(pg, res, "registry insert", errstr, errstr_size);
		goto out;
	}
	if (PQntuples(res) == 1) {
		if (pg_parse_id(PQgetvalue(res, 0, 0), id) != 0)
			rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                "registry insert: bad id '%s'", PQgetvalue(res, 0, 0));
		goto out;
	}
	PQclear(res);
	res = PQexecParams(pg->conn, select_sql, 1, NULL, params, lengths, formats, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = pg_fail(pg, res, "registry select", errstr, errstr_size);
		goto out;
	}
	if (PQntuples(res) != 1) {
		/* the conflicting row vanished between the two statements */
		rc = assay_errf(ASSAY_ERR_RETRY, errstr, errstr_size,
		                "registry select: schema %s not found after conflict", full_name);
		goto out;
	}
	if ((size_t)PQgetlength(res, 0, 1) != text_len ||
	    memcmp(PQgetvalue(res, 0, 1), text, text_len) != 0) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "registry select: stored text of schema %s differs for its "
		                "fingerprint",
		                full_name);
		goto out;
	}
	if (pg_parse_id(PQgetvalue(res, 0, 0), id) != 0)
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "registry select: bad id '%s'", PQgetvalue(res, 0, 0));
out:
	PQclear(res);
	return rc;
}

static int pg_lookup_once(struct pg_registry *pg, int32_t id, char **text, char *errstr,
                          size_t errstr_size)
{
	static const char sql[] = "SELECT schema_text FROM assay_schemas WHERE id = $1";
	char id_text[16];
	const char *params[1] = {id_text};
	PGresult *res;
	int rc = 0;
	int len;

	snprintf(id_text, sizeof(id_text), "%d", (int)id);
	res = PQexecParams(pg->conn, sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = pg_fail(pg, res, "registry lookup", errstr, errstr_size);
		goto out;
	}
	if (PQntuples(res) == 0) {
		rc = assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size, "unknown schema id %d",
		                (int)id);
		goto out;
	}
	len = PQgetlength(res, 0, 0);
	*text = malloc((size_t)len + 1);
	if (*text == NULL) {
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "registry lookup: out of memory");
		goto out;
	}
	memcpy(*text, PQgetvalue(res, 0, 0), (size_t)len + 1);
out:
	PQclear(res);
	return rc;
}

/* A call on a connection that was already open may find it dead (server restarted, idle
 * connection killed): reconnect and try once more before reporting ASSAY_ERR_RETRY. */
static int pg_register(void *impl, const char *text, size_t text_len, const char *full_name,
                       const unsigned char fingerprint[ASSAY_REGISTRY_FINGERPRINT_SIZE],
                       int32_t *id, char *errstr, size_t errstr_size)
{
	struct pg_registry *pg = impl;

	for (int attempt = 0;; attempt++) {
		bool reused = pg->conn != NULL;
		int rc = pg_connect(pg, errstr, errstr_size);

		if (rc != 0)
			return rc;
		rc = pg_register_once(pg, text, text_len, full_name, fingerprint, id, errstr,
		                      errstr_size);
		if (rc == ASSAY_ERR_RETRY && reused && pg->conn == NULL && attempt == 0)
			continue;
		return rc;
	}
}

static int pg_lookup(void *impl, int32_t id, char **text, char *errstr, size_t errstr_size)
{
	struct pg_registry *pg = impl;

	for (int attempt = 0;; attempt++) {
		bool reused = pg->conn != NULL;
		int rc = pg_connect(pg, errstr, errstr_size);

		if (rc != 0)
			return rc;
		rc = pg_lookup_once(pg, id, text, errstr, errstr_size);
		if (rc == ASSAY_ERR_RETRY && reused && pg->conn == NULL && attempt == 0)
			continue;
		return rc;
	}
}

static void pg_destroy(void *impl)
{
	struct pg_registry *pg = impl;

	if (pg == NULL)
		return;
	PQfinish(pg->conn);
	free(pg->url);
	free(pg);
}

static const struct assay_registry_backend pg_backend = {
        .name = "postgresql",
        .register_text = pg_register,
        .lookup = pg_lookup,
        .destroy = pg_destroy,
};

struct assay_registry *assay_registry_pg_new(const char *pg_url, char *errstr, size_t errstr_size)
{
	struct pg_registry *pg;
	PQconninfoOption *options;
	char *parse_error = NULL;

	options = PQconninfoParse(pg_url, &parse_error);
	if (options == NULL) {
		pg_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "registry: bad postgresql url",
		        parse_error ? parse_error : "out of memory");
		PQfreemem(parse_error);
		return NULL;
	}
	PQconninfoFree(options);
	pg = calloc(1, sizeof(*pg));
	if (pg == NULL || (pg->url = strdup(pg_url)) == NULL) {
		free(pg);
		assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "registry: out of memory");
		return NULL;
	}
	return assay_registry_new(&pg_backend, pg, errstr, errstr_size);
}
