/*
 * The partition ledger: the partitions a loop owns, with their positions, and the PostgreSQL
 * connection that stores them. Stored offsets are read (and created at 0) on assignment and
 * moved by a compare-and-set in every batch transaction, which also deletes outbox rows Kafka
 * already holds. The loop, the rebalance handling and the relay use it; it uses none of them.
 */
#include "assay_loop_int.h"
#include "assay_err.h"
#include "assay_strbuf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- partitions ---- */

struct part *assay_ledger_find(struct assay_loop *loop, const char *topic, int32_t partition)
{
	for (size_t i = 0; i < loop->nparts; i++)
		if (loop->parts[i].partition == partition &&
		    strcmp(loop->parts[i].topic, topic) == 0)
			return &loop->parts[i];
	return NULL;
}

/* ---- database connection ---- */

/* Connects when there is no usable connection. Returns 0 or ASSAY_ERR_RETRY. */
int assay_ledger_db(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	if (loop->conn != NULL && PQstatus(loop->conn) == CONNECTION_OK)
		return 0;
	if (loop->conn != NULL) {
		PQfinish(loop->conn);
		loop->conn = NULL;
	}
	return assay_pg_connect(loop->cfg.pg_url, &loop->conn, errstr, errstr_size);
}

void assay_ledger_rollback(struct assay_loop *loop)
{
	PGresult *res;

	if (loop->conn == NULL || PQstatus(loop->conn) != CONNECTION_OK)
		return;
	res = PQexec(loop->conn, "ROLLBACK");
	PQclear(res);
}

/* Formats "{a,b,c}" array literals for the unnest() statements; each stays closed ("}") after
 * every element, so it is ready as a parameter. */
struct arrays {
	struct assay_strbuf topics, partitions, lo, hi;
	size_t n;
};

/* Opens arr, or reopens it over its closing brace, for one more element. */
static void arrays_next(struct assay_strbuf *arr)
{
	if (arr->len == 0) {
		assay_strbuf_appendc(arr, '{');
		return;
	}
	arr->len--; /* over the closing brace */
	assay_strbuf_appendc(arr, ',');
}

static int arrays_add(struct arrays *a, const char *topic, int32_t partition, int64_t lo,
                      int64_t hi)
{
	arrays_next(&a->topics);
	assay_strbuf_append_pg_elem(&a->topics, topic, strlen(topic));
	arrays_next(&a->partitions);
	assay_strbuf_appendf(&a->partitions, "%" PRId32, partition);
	arrays_next(&a->lo);
	assay_strbuf_appendf(&a->lo, "%" PRId64, lo);
	arrays_next(&a->hi);
	assay_strbuf_appendf(&a->hi, "%" PRId64, hi);
	assay_strbuf_appendc(&a->topics, '}');
	assay_strbuf_appendc(&a->partitions, '}');
	assay_strbuf_appendc(&a->lo, '}');
	assay_strbuf_appendc(&a->hi, '}');
	if (a->topics.failed || a->partitions.failed || a->lo.failed || a->hi.failed)
		return ASSAY_ERR_FATAL;
	a->n++;
	return 0;
}

static void arrays_release(struct arrays *a)
{
	assay_strbuf_release(&a->topics);
	assay_strbuf_release(&a->partitions);
	assay_strbuf_release(&a->lo);
	assay_strbuf_release(&a->hi);
	a->n = 0;
}

/* ---- rebalance: positions from PostgreSQL and Kafka ---- */

/* Reads (and creates, at 0) the stored offsets of the partitions in list into their
 * offset fields, and their stream ids into streams (list->cnt entries) unless NULL. */
int assay_ledger_load(struct assay_loop *loop, rd_kafka_topic_partition_list_t *list,
                      int32_t *streams, char *errstr, size_t errstr_size)
{
	struct arrays a = {0};
	PGresult *res = NULL;
	int err;

	for (int i = 0; i < list->cnt; i++) {
		err = arrays_add(&a, list->elems[i].topic, list->elems[i].partition, 0, 0);
		if (err)
			goto out;
	}
	err = assay_ledger_db(loop, errstr, errstr_size);
	if (err)
		goto out;
	{
		const char *params[] = {loop->cfg.group, a.topics.p, a.partitions.p};

		err = assay_pg_exec_params(
		        loop->conn,
		        "INSERT INTO assay_offsets (consumer_group, topic, partition, next_offset) "
		        "SELECT $1, t, p, 0 FROM unnest($2::text[], $3::int[]) AS v(t, p) "
		        "ON CONFLICT DO NOTHING",
		        3, params, NULL, errstr, errstr_size);
		if (err)
			goto out;
		err = assay_pg_query(
		        loop->conn,
		        "SELECT o.topic, o.partition, o.next_offset, o.id FROM assay_offsets o "
		        "JOIN unnest($2::text[], $3::int[]) AS v(t, p) "
		        "ON o.topic = v.t AND o.partition = v.p "
		        "WHERE o.consumer_group = $1",
		        3, params, &res, errstr, errstr_size);
		if (err)
			goto out;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		const char *topic = PQgetvalue(res, r, 0);
		int32_t partition = (int32_t)strtol(PQgetvalue(res, r, 1), NULL, 10);
		int64_t next = strtoll(PQgetvalue(res, r, 2), NULL, 10);

		for (int i = 0; i < list->cnt; i++)
			if (list->elems[i].partition == partition &&
			    strcmp(list->elems[i].topic, topic) == 0) {
				list->elems[i].offset = next;
				if (streams)
					streams[i] =
					        (int32_t)strtol(PQgetvalue(res, r, 3), NULL, 10);
			}
	}
out:
	PQclear(res);
	arrays_release(&a);
	return err;
}

/*
 * Moves the stored offsets of every partition in the batch with a compare-and-set on the
 * values this loop last stored, and deletes outbox rows that Kafka already holds.
 * Returns 0, ASSAY_ERR_FENCED when a row did not match, or the failure class.
 */
int assay_ledger_store(struct assay_loop *loop, struct assay_batch *batch, char *errstr,
                       size_t errstr_size)
{
	struct arrays a = {0}, clean = {0};
	int64_t affected = 0;
	int err = 0;

	/* outbox rows Kafka already holds are deleted about once a second, not every batch */
	loop->cleanup_in_txn = assay_now_ms() - loop->last_cleanup_ms >= OUTBOX_CLEANUP_MS;

	for (size_t i = 0; i < loop->nparts; i++) {
		struct part *p = &loop->parts[i];
		int64_t next = -1;

		for (size_t k = 0; k < batch->count; k++)
			if (batch->msgs[k].partition == p->partition &&
			    strcmp(batch->msgs[k].topic, p->topic) == 0 &&
			    batch->msgs[k].offset + 1 > next)
				next = batch->msgs[k].offset + 1;
		if (next >= 0 && (err = arrays_add(&a, p->topic, p->partition, p->db_next, next)))
			goto out;
		if (loop->cleanup_in_txn && p->relay_pos > p->cleaned_pos &&
		    (err = arrays_add(&clean, p->topic, p->stream, p->relay_pos, 0)))
			goto out;
	}
	if (a.n) {
		const char *params[] = {loop->cfg.group, a.topics.p, a.partitions.p, a.lo.p,
		                        a.hi.p};

		err = assay_pg_exec_params(
		        loop->conn,
		        "UPDATE assay_offsets o SET next_offset = v.hi, updated_at = now() "
		        "FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) "
		        "AS v(t, p, lo, hi) "
		        "WHERE o.consumer_group = $1 AND o.topic = v.t AND o.partition = v.p "
		        "AND o.next_offset = v.lo",
		        5, params, &affected, errstr, errstr_size);
		if (err)
			goto out;
		if (affected != (int64_t)a.n) {
			err = assay_errf(ASSAY_ERR_FENCED, errstr, errstr_size,
			                 "stored offsets moved by another consumer (%" PRId64
			                 " of %zu partitions matched)",
			                 affected, a.n);
			goto out;
		}
	}
	if (clean.n) {
		/* the partitions column of clean holds stream ids here */
		const char *params[] = {clean.partitions.p, clean.lo.p};

		err = assay_pg_exec_params(loop->conn,
		                           "DELETE FROM assay_outbox o USING unnest($1::int[], "
		                           "$2::bigint[]) AS v(s, below) "
		                           "WHERE o.stream = v.s AND o.next_offset <= v.below",
		                           2, params, NULL, errstr, errstr_size);
	}
out:
	arrays_release(&a);
	arrays_release(&clean);
	return err;
}
