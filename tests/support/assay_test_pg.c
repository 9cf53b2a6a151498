/*
 * Fresh databases and small queries for tests: see assay_test_pg.h.
 */
#include "assay_test_pg.h"
#include "assay_test.h"
#include "assay_test_kafka.h"
#include "assay_embed.h"
#include "assay_migrate.h"
#include "assay_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

struct urlbuf {
	char *buf;
	size_t size;
	size_t len;
};

static void url_add(struct urlbuf *u, const char *s)
{
	size_t n = strlen(s);

	if (u->len + n >= u->size)
		fail_msg("test database url does not fit in %zu bytes", u->size);
	memcpy(u->buf + u->len, s, n + 1);
	u->len += n;
}

/* s percent-encoded (RFC 3986 unreserved characters kept). */
static void url_add_encoded(struct urlbuf *u, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char enc[4];

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			enc[0] = (char)c;
			enc[1] = '\0';
		} else {
			enc[0] = '%';
			enc[1] = hex[c >> 4];
			enc[2] = hex[c & 0x0f];
			enc[3] = '\0';
		}
		url_add(u, enc);
	}
}

static const char *option(const PQconninfoOption *opts, const char *keyword)
{
	for (; opts->keyword != NULL; opts++)
		if (strcmp(opts->keyword, keyword) == 0)
			return opts->val != NULL && *opts->val != '\0' ? opts->val : NULL;
	return NULL;
}

static PQconninfoOption *parse(const char *url)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &err);

	if (opts == NULL) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", err != NULL ? err : "out of memory");
		PQfreemem(err);
		fail_msg("cannot parse postgresql url %s: %s", url, msg);
	}
	return opts;
}

/* base's connection options with dbname replaced, as a postgresql:// URL. */
static void build_url(char *url, size_t size, const char *base, const char *dbname)
{
	PQconninfoOption *opts = parse(base), *o;
	struct urlbuf u = {url, size, 0};
	const char *user = option(opts, "user"), *password = option(opts, "password");
	const char *host = option(opts, "host"), *port = option(opts, "port");
	int multi_host = host != NULL && strchr(host, ',') != NULL;
	char sep = '?';

	url[0] = '\0';
	url_add(&u, "postgresql://");
	if (user != NULL) {
		url_add_encoded(&u, user);
		if (password != NULL) {
			url_add(&u, ":");
			url_add_encoded(&u, password);
		}
		url_add(&u, "@");
	}
	if (host != NULL && !multi_host)
		url_add_encoded(&u, host);
	if (port != NULL && !multi_host) {
		url_add(&u, ":");
		url_add_encoded(&u, port);
	}
	url_add(&u, "/");
	url_add_encoded(&u, dbname);
	for (o = opts; o->keyword != NULL; o++) {
		char kv[2] = {sep, '\0'};
		const char *k = o->keyword;

		if (o->val == NULL || *o->val == '\0' || strcmp(k, "dbname") == 0 ||
		    strcmp(k, "user") == 0 || strcmp(k, "password") == 0 ||
		    (!multi_host && (strcmp(k, "host") == 0 || strcmp(k, "port") == 0)))
			continue;
		url_add(&u, kv);
		url_add_encoded(&u, k);
		url_add(&u, "=");
		url_add_encoded(&u, o->val);
		sep = '&';
	}
	PQconninfoFree(opts);
}

/* Runs one command on the ASSAY_PG_URL server (the admin connection). */
static void admin_exec(const char *sql)
{
	char err[512];
	PGconn *conn = NULL;
	int rc;

	rc = assay_pg_connect(assay_test_pg_url(), &conn, err, sizeof(err));
	if (rc != 0)
		fail_msg("%s", err);
	rc = assay_pg_exec(conn, sql, err, sizeof(err));
	PQfinish(conn);
	if (rc != 0)
		fail_msg("%s: %s", sql, err);
}

/* before, the identifier name quoted, after; fails the test when it does not fit. */
static void with_ident(char *sql, size_t size, const char *before, const char *name,
                       const char *after)
{
	char quoted[160];
	size_t i, n = strlen(name);
	int len;

	if (n + 3 > sizeof(quoted))
		fail_msg("database name too long: %s", name);
	quoted[0] = '"';
	for (i = 0; i < n; i++) {
		if (name[i] == '"')
			fail_msg("database name with a quote: %s", name);
		quoted[i + 1] = name[i];
	}
	quoted[n + 1] = '"';
	quoted[n + 2] = '\0';
	len = snprintf(sql, size, "%s%s%s", before, quoted, after);
	if (len < 0 || (size_t)len >= size)
		fail_msg("statement too long for %s", name);
}

void assay_test_pg_fresh_db(char *url, size_t size, const char *prefix)
{
	char name[64], unique[64], sql[256];
	size_t i, n = 0;

	for (; *prefix != '\0' && n < 32; prefix++) {
		char c = *prefix;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		name[n++] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? c : '_';
	}
	assay_test_unique(unique, sizeof(unique), "");
	for (i = 0; unique[i] != '\0' && n < sizeof(name) - 1; i++) {
		char c = unique[i];

		name[n++] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? c : '_';
	}
	name[n] = '\0';

	/* template0: nobody connects to it, so concurrent creations never find it busy */
	with_ident(sql, sizeof(sql), "CREATE DATABASE ", name, " TEMPLATE template0");
	admin_exec(sql);
	build_url(url, size, assay_test_pg_url(), name);
}

void assay_test_pg_drop_db(const char *url)
{
	PQconninfoOption *opts = parse(url);
	const char *dbname = option(opts, "dbname");
	char name[64], sql[256];

	if (dbname == NULL || strlen(dbname) >= sizeof(name)) {
		PQconninfoFree(opts);
		fail_msg("no database name in %s", url);
	}
	snprintf(name, sizeof(name), "%s", dbname);
	PQconninfoFree(opts);
	with_ident(sql, sizeof(sql), "DROP DATABASE IF EXISTS ", name, " WITH (FORCE)");
	admin_exec(sql);
}

void assay_test_pg_migrate(const char *url)
{
	char errstr[512];
	PGconn *conn = NULL;

	if (assay_pg_connect(url, &conn, errstr, sizeof(errstr)) ||
	    assay_migrate(conn, assay_embedded_migrations, errstr, sizeof(errstr))) {
		PQfinish(conn);
		fail_msg("migrate: %s", errstr);
	}
	PQfinish(conn);
}

struct assay_test_pg_db *assay_test_pg_db_new(const char *prefix)
{
	struct assay_test_pg_db *db = calloc(1, sizeof(*db));
	char errstr[512];

	assert_non_null(db);
	assay_test_pg_fresh_db(db->url, sizeof(db->url), prefix);
	if (assay_pg_connect(db->url, &db->conn, errstr, sizeof(errstr)) != 0)
		fail_msg("%s", errstr);
	return db;
}

void assay_test_pg_db_destroy(struct assay_test_pg_db *db)
{
	PQfinish(db->conn);
	assay_test_pg_drop_db(db->url);
	free(db);
}

void assay_test_pg_exec(PGconn *conn, const char *sql)
{
	char errstr[512];

	if (assay_pg_exec(conn, sql, errstr, sizeof(errstr)) != 0)
		fail_msg("%s: %s", sql, errstr);
}

long long assay_test_pg_int(PGconn *conn, const char *sql)
{
	char errstr[512];
	PGresult *res = NULL;
	long long v;

	if (assay_pg_query(conn, sql, 0, NULL, &res, errstr, sizeof(errstr)) != 0)
		fail_msg("%s: %s", sql, errstr);
	assert_int_equal(PQntuples(res), 1);
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

long assay_test_pg_scalar(const char *url, const char *sql)
{
	char errstr[512];
	PGconn *conn = NULL;
	PGresult *res = NULL;
	long v;

	if (assay_pg_connect(url, &conn, errstr, sizeof(errstr)) ||
	    assay_pg_query(conn, sql, 0, NULL, &res, errstr, sizeof(errstr))) {
		PQfinish(conn);
		fail_msg("%s: %s", sql, errstr);
	}
	v = PQntuples(res) && !PQgetisnull(res, 0, 0) ? strtol(PQgetvalue(res, 0, 0), NULL, 10)
	                                              : -1;
	PQclear(res);
	PQfinish(conn);
	return v;
}

void assay_test_pg_wait(const char *url, const char *sql, long want, int timeout_ms)
{
	int64_t deadline = assay_test_now_ms() + timeout_ms;
	long got;

	while ((got = assay_test_pg_scalar(url, sql)) != want && assay_test_now_ms() < deadline)
		usleep(100 * 1000);
	if (got != want)
		fail_msg("%s: %ld, expected %ld", sql, got, want);
}
