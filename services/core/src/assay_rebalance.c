/*
 * Partition assignment and its upsets: on assignment the stored offsets are read from
 * PostgreSQL and the published positions from the group's committed offsets, the handler
 * reloads its state, and the consumer starts at the stored offsets; on revocation the relay
 * publishes what is applied first. Also the re-seek after a fenced batch.
 */
#include "assay_loop_int.h"
#include "assay_err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void assay_rebalance_clear(struct assay_loop *loop)
{
	assay_relay_forget(loop);
	for (size_t i = 0; i < loop->nparts; i++)
		free(loop->parts[i].topic);
	free(loop->parts);
	loop->parts = NULL;
	loop->nparts = 0;
	atomic_store(&loop->assigned, 0);
}

static int on_assign(struct assay_loop *loop, rd_kafka_topic_partition_list_t *list, char *errstr,
                     size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *committed = NULL;
	rd_kafka_resp_err_t kerr;
	int32_t *streams;
	bool published = true;
	int err;

	streams = calloc((size_t)list->cnt + 1, sizeof(*streams));
	if (streams == NULL)
		return ASSAY_ERR_FATAL;
	for (;;) {
		err = assay_ledger_load(loop, list, streams, errstr, errstr_size);
		if (err != ASSAY_ERR_RETRY || assay_loop_stopping(loop))
			break;
		assay_log_warn(loop->cfg.log, "stored offsets unavailable, retrying",
		               ASSAY_LF_STR("error", errstr));
		assay_loop_backoff(loop);
	}
	/* the handler's state may have changed under another owner: reload it */
	while (err == 0 && loop->handler.assigned) {
		err = assay_ledger_db(loop, errstr, errstr_size);
		if (err == 0)
			err = loop->handler.assigned(loop->handler.ctx, loop->conn, list, errstr,
			                             errstr_size);
		if (err != ASSAY_ERR_RETRY || assay_loop_stopping(loop))
			break;
		assay_log_warn(loop->cfg.log, "handler state unavailable, retrying",
		               ASSAY_LF_STR("error", errstr));
		assay_loop_backoff(loop);
		err = 0;
	}
	assay_loop_backoff_reset(loop);
	if (err)
		goto out;

	assay_rebalance_clear(loop);
	loop->parts = calloc((size_t)list->cnt + 1, sizeof(*loop->parts));
	if (loop->parts == NULL) {
		err = ASSAY_ERR_FATAL;
		goto out;
	}
	/* the group's committed offsets are the relayed positions */
	committed = rd_kafka_topic_partition_list_copy(list);
	kerr = rd_kafka_committed(loop->consumer, committed, 10000);
	for (int i = 0; i < list->cnt; i++) {
		struct part *p = &loop->parts[loop->nparts];
		char labels[400];

		p->topic = strdup(list->elems[i].topic);
		if (p->topic == NULL) {
			err = ASSAY_ERR_FATAL;
			goto out;
		}
		loop->nparts++;
		p->partition = list->elems[i].partition;
		p->stream = streams[i];
		p->db_next = list->elems[i].offset;
		p->polled_next = p->db_next;
		p->relay_pos = RELAY_UNKNOWN;
		if (kerr == RD_KAFKA_RESP_ERR_NO_ERROR && committed->elems[i].err == 0)
			p->relay_pos =
			        committed->elems[i].offset >= 0 ? committed->elems[i].offset : 0;
		published = published && p->relay_pos == p->db_next;
		p->cleaned_pos = 0;
		if (loop->cfg.metrics) {
			snprintf(labels, sizeof(labels), "topic=\"%s\",partition=\"%" PRId32 "\"",
			         p->topic, p->partition);
			p->lag = assay_metrics_gauge(loop->cfg.metrics, "assay_consumer_lag",
			                             "messages between the stored offset and the "
			                             "partition's end",
			                             labels);
		}
		assay_log_info(loop->cfg.log, "partition assigned", ASSAY_LF_STR("topic", p->topic),
		               ASSAY_LF_INT("partition", p->partition),
		               ASSAY_LF_INT("offset", p->db_next),
		               ASSAY_LF_INT("relayed", p->relay_pos));
	}
	/* everything applied is published: the relay can work from memory at once */
	loop->mem_valid = published;
	loop->unpublished_since_ms = published ? 0 : assay_now_ms();
	kerr = rd_kafka_assign(loop->consumer, list);
	if (kerr) {
		err = assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "assign failed: %s",
		                 rd_kafka_err2str(kerr));
		goto out;
	}
	atomic_store(&loop->assigned, (int)loop->nparts);
	if (loop->cfg.metrics)
		assay_metrics_set_ready(loop->cfg.metrics, true);
out:
	if (committed)
		rd_kafka_topic_partition_list_destroy(committed);
	free(streams);
	return err;
}

void assay_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t kerr,
                        rd_kafka_topic_partition_list_t *list, void *opaque)
{
	struct assay_loop *loop = opaque;
	char errstr[400] = "";
	int err;

	if (kerr == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		err = on_assign(loop, list, errstr, sizeof(errstr));
		if (err && !assay_loop_stopping(loop)) {
			loop->fatal = true;
			snprintf(loop->fatal_errstr, sizeof(loop->fatal_errstr),
			         "partition assignment failed: %s", errstr);
			rd_kafka_assign(rk, NULL);
		}
		return;
	}
	/* revoked (or an error): messages in hand are not applied; the next owner reads them
	 * from the stored offsets. Publish what is applied so the handover is quick. */
	assay_batch_discard_polled(loop);
	if (!rd_kafka_assignment_lost(rk) &&
	    assay_relay_publish(loop, true, errstr, sizeof(errstr)) != 0)
		assay_log_warn(loop->cfg.log, "relay before revoke failed",
		               ASSAY_LF_STR("error", errstr));
	assay_log_info(loop->cfg.log, "partitions revoked", ASSAY_LF_INT("count", list->cnt));
	assay_rebalance_clear(loop);
	if (loop->cfg.metrics)
		assay_metrics_set_ready(loop->cfg.metrics, false);
	rd_kafka_assign(rk, NULL);
}

/* Re-reads the stored offsets of the assigned partitions and seeks the consumer to them. */
int assay_rebalance_reseek(struct assay_loop *loop, char *errstr, size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *list =
	        rd_kafka_topic_partition_list_new((int)loop->nparts);
	rd_kafka_error_t *error;
	int err;

	for (size_t i = 0; i < loop->nparts; i++)
		rd_kafka_topic_partition_list_add(list, loop->parts[i].topic,
		                                  loop->parts[i].partition);
	assay_relay_forget(loop);
	/* all three steps or none: applying with stored offsets the consumer has not been
	 * moved to, or with state not reloaded, would skip or misjudge messages */
	for (;;) {
		err = assay_ledger_db(loop, errstr, errstr_size);
		if (!err)
			err = assay_ledger_load(loop, list, NULL, errstr, errstr_size);
		if (!err) {
			for (int i = 0; i < list->cnt; i++) {
				struct part *p = assay_ledger_find(loop, list->elems[i].topic,
				                                   list->elems[i].partition);
				if (p) {
					p->db_next = list->elems[i].offset;
					p->polled_next = p->db_next;
					p->relay_pos = RELAY_UNKNOWN; /* re-read what Kafka holds */
				}
			}
			/* another owner changed the state: the handler reloads it, as after an
			 * assignment */
			if (loop->handler.assigned)
				err = loop->handler.assigned(loop->handler.ctx, loop->conn, list,
				                             errstr, errstr_size);
		}
		if (!err) {
			error = rd_kafka_seek_partitions(loop->consumer, list, 10000);
			if (error) {
				err = assay_errf(ASSAY_ERR_RETRY, errstr, errstr_size,
				                 "seek failed: %s", rd_kafka_error_string(error));
				rd_kafka_error_destroy(error);
			}
		}
		if (err != ASSAY_ERR_RETRY || assay_loop_stopping(loop))
			break;
		assay_log_warn(loop->cfg.log, "re-seek failed, retrying",
		               ASSAY_LF_STR("error", errstr));
		assay_loop_backoff(loop);
	}
	assay_loop_backoff_reset(loop);
	rd_kafka_topic_partition_list_destroy(list);
	return err;
}
