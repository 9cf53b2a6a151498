/*
 * Applies the numbered SQL migrations in order under a session advisory lock and records
 * each one with the SHA-256 of its text, so that a migration runs once across any number of
 * services starting together and an applied file that was edited afterwards is caught.
 */
#include "assay_migrate.h"
#include "assay_pg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define LOCK_SQL   "SELECT pg_advisory_lock(" ASSAY_MIGRATE_LOCK_KEY ")"
#define UNLOCK_SQL "SELECT pg_advisory_unlock(" ASSAY_MIGRATE_LOCK_KEY ")"

#define CREATE_SQL                                                                         \
	"CREATE TABLE assay_migrations (version integer PRIMARY KEY, name text NOT NULL, " \
	"sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"

long assay_migrate_version(const char *name)
{
	const char *p = name, *word;
	long version = 0;
	size_t digits = 0;

	if (name == NULL)
		return -1;
	for (; isdigit((unsigned char)*p); p++, digits++) {
		if (digits == 9)
			return -1;
		version = version * 10 + (*p - '0');
	}
	if (digits == 0 || *p != '_')
		return -1;
	word = ++p;
	while (isalnum((unsigned char)*p) || *p == '_' || *p == '-')
		p++;
	if (p == word || strcmp(p, ".sql") != 0)
		return -1;
	return version;
}

/* Lowercase hex SHA-256 of data into hex (65 bytes); 0 or -1. */
static int sha256_hex(const char *data, size_t size, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	if (EVP_Digest(data, size, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return -1;
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* Runs sql with text params; the result (TUPLES_OK/COMMAND_OK) in *out when out is not NULL. */
static int run(PGconn *conn, const char *what, const char *sql, int nparams,
               const char *const *params, PGresult **out, char *errstr, size_t errstr_size)
{
	PGresult *res;
	ExecStatusType st;
	int rc;

	if (out != NULL)
		*out = NULL;
	res = nparams > 0 ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
	                  : PQexec(conn, sql);
	st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (res != NULL &&
	    (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY)) {
		if (out != NULL)
			*out = res; /* handed to the caller */
		else
			PQclear(res);
		return 0;
	}
	if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
		/* COPY to or from the client in a migration: end it so the connection stays
		 * usable (bounded: a connection that keeps answering is broken anyway) */
		int guard;

		for (guard = 0; res != NULL; guard++) {
			char *buf;

			st = PQresultStatus(res);
			PQclear(res);
			res = NULL;
			if (guard == 100 || st == PGRES_COPY_BOTH)
				break;
			if (st == PGRES_COPY_IN &&
			    PQputCopyEnd(conn, "copy is not supported in migrations") < 0)
				break;
			if (st == PGRES_COPY_OUT)
				while (PQgetCopyData(conn, &buf, 0) > 0)
					PQfreemem(buf);
			res = PQgetResult(conn);
		}
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "%s: copy is not supported in migrations", what);
	}
	rc = assay_pg_result_error(res, conn, what, errstr, errstr_size);
	PQclear(res);
	/* a migration that violates a constraint is our bug, not a bad input to move past */
	return rc == ASSAY_ERR_REJECT || rc == 0 ? ASSAY_ERR_FATAL : rc;
}

/* The file with the given version, or NULL. */
static const struct assay_embedded *file_of(const struct assay_embedded *files, long version)
{
	for (; files->name != NULL; files++)
		if (assay_migrate_version(files->name) == version)
			return files;
	return NULL;
}

/* Whether version is among the ntuples rows of rec (column 0). */
static int is_recorded(const PGresult *rec, long version)
{
	int i;

	for (i = 0; i < PQntuples(rec); i++)
		if (strtol(PQgetvalue(rec, i, 0), NULL, 10) == version)
			return 1;
	return 0;
}

/* The names are valid and the versions strictly increasing. */
static int check_names(const struct assay_embedded *files, char *errstr, size_t errstr_size)
{
	long prev = -1, version;

	for (; files->name != NULL; files++) {
		version = assay_migrate_version(files->name);
		if (version < 0)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "migration file name %s invalid: expected NNN_name.sql",
			                  files->name);
		if (version <= prev)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "migration %s invalid: version %ld is not greater than "
			                  "the previous file's %ld",
			                  files->name, version, prev);
		prev = version;
	}
	return 0;
}

/* Every recorded version has its file, under the same name, with the same SHA-256. */
static int check_recorded(const struct assay_embedded *files, const PGresult *rec, char *errstr,
                          size_t errstr_size)
{
	const struct assay_embedded *f;
	char hex[65];
	long version;
	int i;

	for (i = 0; i < PQntuples(rec); i++) {
		const char *name = PQgetvalue(rec, i, 1);

		version = strtol(PQgetvalue(rec, i, 0), NULL, 10);
		f = file_of(files, version);
		if (f == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "migration %s (version %ld) was applied but its file is "
			                  "missing",
			                  name, version);
		if (strcmp(f->name, name) != 0)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "migration %s has version %ld, which was applied as %s",
			                  f->name, version, name);
		if (sha256_hex(f->data, f->size, hex) != 0)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "migration %s: sha-256 failed", f->name);
		if (strcmp(hex, PQgetvalue(rec, i, 2)) != 0)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "migration %s was changed after it was applied", f->name);
	}
	return 0;
}

/* BEGIN, the file, its assay_migrations row, COMMIT; the caller rolls back on failure. */
static int apply_one(PGconn *conn, const struct assay_embedded *f, char *errstr, size_t errstr_size)
{
	char what[256], hex[65], version[24];
	const char *params[3];
	int rc;

	snprintf(what, sizeof(what), "migration %s failed", f->name);
	snprintf(version, sizeof(version), "%ld", assay_migrate_version(f->name));
	if (sha256_hex(f->data, f->size, hex) != 0)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "migration %s: sha-256 failed", f->name);
	params[0] = version;
	params[1] = f->name;
	params[2] = hex;
	rc = run(conn, what, "BEGIN", 0, NULL, NULL, errstr, errstr_size);
	if (rc == 0)
		rc = run(conn, what, f->data, 0, NULL, NULL, errstr, errstr_size);
	if (rc == 0 && PQtransactionStatus(conn) != PQTRANS_INTRANS)
		rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                "migration %s failed: it ended the transaction (no BEGIN/COMMIT "
		                "in migrations)",
		                f->name);
	if (rc == 0)
		rc = run(conn, what,
		         "INSERT INTO assay_migrations (version, name, sha256) VALUES ($1, $2, $3)",
		         3, params, NULL, errstr, errstr_size);
	if (rc == 0)
		rc = run(conn, what, "COMMIT", 0, NULL, NULL, errstr, errstr_size);
	return rc;
}

int assay_migrate_run(PGconn *conn, const struct assay_embedded *files, size_t *applied,
                      char *errstr, size_t errstr_size)
{
	const struct assay_embedded *f;
	PGresult *res = NULL;
	long newest = -1;
	int rc, i;

	if (applied != NULL)
		*applied = 0;
	rc = check_names(files, errstr, errstr_size);
	if (rc != 0)
		return rc;
	if (PQstatus(conn) != CONNECTION_OK)
		return assay_pg_result_error(NULL, conn, "migrate failed", errstr, errstr_size);
	if (PQtransactionStatus(conn) != PQTRANS_IDLE || PQpipelineStatus(conn) != PQ_PIPELINE_OFF)
		return assay_errf(
		        ASSAY_ERR_FATAL, errstr, errstr_size,
		        "migrate failed: connection busy, in a transaction or a pipeline");

	rc = run(conn, "migration lock failed", LOCK_SQL, 0, NULL, NULL, errstr, errstr_size);
	if (rc != 0)
		return rc;

	rc = run(conn, "migration table check failed",
	         "SELECT to_regclass('assay_migrations') IS NOT NULL", 0, NULL, &res, errstr,
	         errstr_size);
	if (rc != 0)
		goto unlock;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		rc = run(conn, "migration table create failed", CREATE_SQL, 0, NULL, NULL, errstr,
		         errstr_size);
		if (rc != 0)
			goto unlock;
	}
	PQclear(res);
	res = NULL;

	rc = run(conn, "migration records read failed",
	         "SELECT version, name, sha256 FROM assay_migrations ORDER BY version", 0, NULL,
	         &res, errstr, errstr_size);
	if (rc != 0)
		goto unlock;
	rc = check_recorded(files, res, errstr, errstr_size);
	if (rc != 0)
		goto unlock;
	for (i = 0; i < PQntuples(res); i++)
		newest = strtol(PQgetvalue(res, i, 0), NULL, 10); /* ordered by version */

	for (f = files; f->name != NULL; f++) {
		long version = assay_migrate_version(f->name);

		if (is_recorded(res, version))
			continue;
		if (version < newest) {
			rc = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                "migration %s is older than the applied version %ld: give "
			                "it a higher number",
			                f->name, newest);
			goto unlock;
		}
		rc = apply_one(conn, f, errstr, errstr_size);
		if (rc != 0)
			goto rollback;
		if (applied != NULL)
			(*applied)++;
	}
	goto unlock;

rollback:
	if (PQtransactionStatus(conn) != PQTRANS_IDLE && PQstatus(conn) == CONNECTION_OK)
		PQclear(PQexec(conn, "ROLLBACK"));
unlock:
	PQclear(res);
	if (PQstatus(conn) == CONNECTION_OK) {
		char unlock_err[256];
		int unlock_rc = run(conn, "migration unlock failed", UNLOCK_SQL, 0, NULL, NULL,
		                    unlock_err, sizeof(unlock_err));

		if (rc == 0 && unlock_rc != 0)
			rc = assay_errf(unlock_rc, errstr, errstr_size, "%s", unlock_err);
	}
	return rc;
}

int assay_migrate(PGconn *conn, const struct assay_embedded *files, char *errstr,
                  size_t errstr_size)
{
	return assay_migrate_run(conn, files, NULL, errstr, errstr_size);
}
