/*
 * PostgreSQL isolation for tests: a fresh, uniquely named database per test run on the
 * server of ASSAY_PG_URL, so tests that need schema never share it with each other, with
 * an earlier run, or with the services. Failures fail the current cmocka test.
 */
#ifndef ASSAY_TEST_PG_H
#define ASSAY_TEST_PG_H

#include <stddef.h>

/*
 * Creates a database named "<prefix>_<pid>_<counter>_<random>" (lowercased; any character
 * other than a-z, 0-9 and '_' becomes '_'; at most 63 bytes) on the ASSAY_PG_URL server and
 * writes its URL into url (same host, port, user, password and options, the new dbname).
 * url: size bytes, not NULL; prefix: not NULL, e.g. "test_migrate".
 */
void assay_test_pg_fresh_db(char *url, size_t size, const char *prefix);

/*
 * Drops the database that url names, with (FORCE): sessions still connected are ended.
 * A database that no longer exists is not an error. url: not NULL.
 */
void assay_test_pg_drop_db(const char *url);

#endif
