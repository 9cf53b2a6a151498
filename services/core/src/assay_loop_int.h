/*
 * Internals shared by the batch loop's files: assay_loop.c (consume, apply, rebalance),
 * assay_batch.c (the handler's view of a batch: emit, dead-letter) and assay_relay.c (the
 * outbox relay and its thread). Not for services: they use assay_loop.h.
 */
#ifndef ASSAY_LOOP_INT_H
#define ASSAY_LOOP_INT_H

#include "assay_loop.h"
#include "assay_pg.h"
#include "assay_sha256.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* outbox rows read per partition and recovery transaction (each holds one batch) */
#define RELAY_MAX_OUTBOX_ROWS 16
#define RELAY_UNKNOWN         (-2)
#define OUTBOX_CLEANUP_MS     1000
/* Bytes of a record beyond its key, value and the handler's headers: the record batch framing
 * and the headers the relay adds (event_id, produced_by), with room to spare. */
#define RECORD_OVERHEAD 512
/* Kafka's default max.message.bytes of a topic, used where the broker did not say */
#define TOPIC_DEFAULT_MAX_BYTES 1048588
/* librdkafka's default message.max.bytes of a producer */
#define PRODUCER_DEFAULT_MAX_BYTES 1000000
/* The longest trace_id (or event_id) of an input copied into the events it causes; the
 * record overhead above counts it */
#define TRACE_ID_MAX_BYTES 256
/* What a dead letter keeps of a key or value whose whole bytes are parked */
#define PARKED_PREFIX_BYTES 1024
/* Events the broker refused for good, remembered until the outbox path parks them */
#define REFUSED_MAX 256
/* A consumer fenced again sooner than this after it was made anew: another live instance
 * has the same instance.id, a configuration error (fatal) */
#define RENEW_MIN_INTERVAL_MS 60000

struct part {
	char *topic;
	int32_t partition;
	int32_t stream;      /* assay_offsets.id: the partition's rows in the outbox */
	int64_t db_next;     /* next offset to apply (as stored in PostgreSQL) */
	int64_t polled_next; /* next offset to take from the consumer (db_next after a seek) */
	int64_t relay_pos;   /* input offset below which the outbox is published; RELAY_UNKNOWN */
	int64_t cleaned_pos; /* outbox rows below this are deleted */
	struct assay_gauge *lag;
};

struct out_event {
	size_t msg;         /* index of the causing message in its batch */
	char *source_topic; /* set when the event moves to the relay queue */
	int32_t source_partition;
	int64_t source_offset;
	int seq;
	char *topic;
	void *key;
	size_t key_len;
	void *value;
	size_t value_len;
	struct assay_headers headers;
};

/* One Kafka transaction handed to the relay thread: the queued events and the positions to
 * commit with them. Owned by the loop thread except while the relay thread runs it. */
struct relay_job {
	struct out_event *events;
	size_t nevents;
	rd_kafka_topic_partition_list_t *offsets;
	rd_kafka_consumer_group_metadata_t *cgmd;
	bool done;
	int err;
	char errstr[512];
	int64_t started_ms;
};

/* Bytes kept in assay_parked_values because they do not fit their topic (assay_parked.c). */
struct parked {
	size_t msg;         /* the input message in its batch */
	int seq;            /* -1: the input itself; n: the n-th event it caused */
	char *target_topic; /* for an event: where it was to go; NULL for the input */
	void *key;          /* owned copies; NULL for NULL */
	size_t key_len;
	void *value;
	size_t value_len;
	unsigned char *headers; /* assay_headers encoding, NULL for none */
	size_t headers_len;
	char *reason;
	char sha256[65]; /* of value, hex */
};

/* The largest key + value + handler headers a topic takes. */
struct topic_room {
	char *topic;
	size_t room;
};

struct assay_batch {
	struct assay_loop *loop;
	struct assay_msg *msgs;
	size_t count;
	struct out_event *events;
	size_t nevents;
	size_t events_cap;
	size_t ndead;
	struct parked *parked; /* written with the outbox, in the batch transaction */
	size_t nparked, parked_cap;
};

struct assay_loop {
	struct assay_loop_config cfg;
	struct assay_handler handler;
	const char *deadletter_topic;
	rd_kafka_t *consumer;
	rd_kafka_t *producer;
	PGconn *conn;

	struct part *parts;
	size_t nparts;
	atomic_int assigned;  /* nparts, readable from other threads */
	bool fatal;           /* set by the rebalance callback */
	bool consumer_failed; /* a fatal consumer error: the consumer is made anew */
	int64_t renewed_ms;   /* when it last was */
	char fatal_errstr[512];

	rd_kafka_message_t **rkms; /* the batch in hand */
	size_t nrkms;

	struct assay_copybin outbox; /* the batch's outbox rows, COPY binary */
	struct assay_copybin parked; /* the batch's parked values, COPY binary */
	struct topic_room *rooms;    /* per produced topic, read from the broker at start */
	size_t nrooms;
	size_t default_room;            /* any other topic */
	size_t producer_max_bytes;      /* the producer's message.max.bytes */
	struct assay_log_limit dlq_log; /* dead-letter lines, rate-limited */
	int backoff_ms;
	struct assay_uuid_maker *ids;       /* event ids on the loop thread */
	struct assay_uuid_maker *relay_ids; /* event ids where the relay publishes */

	/* Events applied but not yet published. While mem_valid, mem holds every outbox row
	 * between relay_pos and db_next of every assigned partition, so the relay publishes from
	 * memory; otherwise (after a start, a rebalance or a re-seek) it reads the outbox. */
	struct out_event *mem;
	size_t nmem, mem_cap;
	bool mem_valid;
	int64_t last_relay_ms;
	int64_t last_cleanup_ms;
	size_t fetch_queue_bytes; /* the consumer's queued.max.messages.kbytes, in bytes */
	size_t polled_bytes;      /* taken from the consumer since its queue was last empty */

	/* The relay thread runs one Kafka transaction (a job) at a time while this thread
	 * goes on applying batches; mu guards job and quit. */
	pthread_t relay_thread;
	bool relay_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct relay_job *job; /* submitted and not yet collected */
	bool quit;
	bool cleanup_in_txn; /* the batch transaction in flight deletes published outbox rows */

	/* Events the broker refused for good (delivery reports, any thread; guarded by mu):
	 * their event ids, so the outbox path parks them instead of producing them again. */
	char refused[REFUSED_MAX][ASSAY_UUID_LEN];
	size_t nrefused;
	struct assay_log_limit refused_log; /* refusal lines, rate-limited (guarded by mu) */
	/* refused events sent again after the limits were read anew (loop thread): a second
	 * refusal parks them whatever their size */
	char struck[REFUSED_MAX][ASSAY_UUID_LEN];
	size_t nstruck;
	/* refused events decided to be parked, until the transaction with their dead letters
	 * commits (loop thread) */
	char parking[REFUSED_MAX][ASSAY_UUID_LEN];
	size_t nparking;

	/* Health: since when the relay fails (0: it does not) and why; since when applied
	 * events wait to be published (0: none wait). Loop thread only. */
	int64_t relay_failing_since_ms;
	char relay_error[512];
	int64_t unpublished_since_ms;
	int64_t health_checked_ms;
	struct assay_counter *m_consumed;
	struct assay_counter *m_produced;
	struct assay_counter *m_deadlettered;
	struct assay_counter *m_retries;
	struct assay_histogram *m_batch_size;
	struct assay_histogram *m_batch_seconds;
	struct assay_histogram *m_relay_seconds;
	struct assay_gauge *m_oldest_unpublished;
	struct assay_counter *m_parked;
};

static inline int64_t assay_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void assay_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static inline bool assay_loop_stopping(const struct assay_loop *loop)
{
	return loop->cfg.stop != NULL && *loop->cfg.stop;
}

/* Sleeps the current backoff (in slices, so a stop request is seen), counts a retry and
 * doubles the backoff. */
static inline void assay_loop_backoff(struct assay_loop *loop)
{
	int left = loop->backoff_ms;

	if (loop->m_retries)
		assay_counter_add(loop->m_retries, 1);
	while (left > 0 && !assay_loop_stopping(loop)) {
		int slice = left < 100 ? left : 100;

		assay_sleep_ms(slice);
		left -= slice;
	}
	loop->backoff_ms *= 2;
	if (loop->backoff_ms > loop->cfg.retry_backoff_max_ms)
		loop->backoff_ms = loop->cfg.retry_backoff_max_ms;
}

static inline void assay_loop_backoff_reset(struct assay_loop *loop)
{
	loop->backoff_ms = loop->cfg.retry_backoff_ms;
}

/* assay_ledger.c: the partitions owned, their positions, the connection storing them */
struct part *assay_ledger_find(struct assay_loop *loop, const char *topic, int32_t partition);
/* Connects when there is no usable connection. Returns 0 or ASSAY_ERR_RETRY. */
int assay_ledger_db(struct assay_loop *loop, char *errstr, size_t errstr_size);
/* Rolls back the transaction in progress, if the connection is usable. */
void assay_ledger_rollback(struct assay_loop *loop);
/* Reads (and creates, at 0) the stored offsets of the partitions in list into their
 * offset fields, and their stream ids into streams (list->cnt entries) unless NULL. */
int assay_ledger_load(struct assay_loop *loop, rd_kafka_topic_partition_list_t *list,
                      int32_t *streams, char *errstr, size_t errstr_size);
/* In the batch transaction: moves the stored offsets of the batch's partitions with a
 * compare-and-set and deletes outbox rows Kafka holds (about once a second). Returns 0,
 * ASSAY_ERR_FENCED when a row did not match, or the failure class. */
int assay_ledger_store(struct assay_loop *loop, struct assay_batch *batch, char *errstr,
                       size_t errstr_size);

/* assay_limits.c: what each produced topic takes */
/* Before the producer: reads the topics' limits into *limits (malloc'd, one per room) and
 * sizes the producer for the largest. */
int assay_limits_read(struct assay_loop *loop, int64_t **limits, char *errstr, size_t errstr_size);
/* After the producer: the rooms from limits and the producer's message.max.bytes. */
void assay_limits_size(struct assay_loop *loop, const int64_t *limits);
/* The largest key + value + headers (as assay_headers_wire_size counts them) the topic
 * takes. */
size_t assay_limits_room(const struct assay_loop *loop, const char *topic);
/* Reads the topics' limits from the broker again (after the broker refused an event). */
void assay_limits_refresh(struct assay_loop *loop);

/* assay_clients.c: the consumer and the transactional producer */
int assay_clients_consumer(struct assay_loop *loop, char *errstr, size_t errstr_size);
int assay_clients_producer(struct assay_loop *loop, char *errstr, size_t errstr_size);
/* Replaces a consumer librdkafka declared unusable (the partitions are given up first). */
int assay_clients_renew_consumer(struct assay_loop *loop, char *errstr, size_t errstr_size);

/* assay_rebalance.c */
/* The rebalance callback of the consumer (rd_kafka_conf_set_rebalance_cb). */
void assay_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t kerr,
                        rd_kafka_topic_partition_list_t *list, void *opaque);
/* Forgets the partitions (after the relay published or dropped its queue). */
void assay_rebalance_clear(struct assay_loop *loop);
/* Re-reads the stored offsets of the assigned partitions, has the handler reload, seeks. */
int assay_rebalance_reseek(struct assay_loop *loop, char *errstr, size_t errstr_size);

/* assay_batch.c */
/* The name-based id of the seq'th event caused by (topic, partition, offset). maker: the
 * calling thread's (loop->ids on the loop thread, loop->relay_ids where events are
 * published). */
void assay_loop_event_id(const struct assay_loop *loop, struct assay_uuid_maker *maker,
                         const char *topic, int32_t partition, int64_t offset, int seq,
                         char out[ASSAY_UUID_LEN]);
void assay_out_event_release(struct out_event *e);
/* The batch view of loop->rkms[first, first + n). Returns 0 or ASSAY_ERR_FATAL. */
int assay_batch_build(struct assay_loop *loop, struct assay_batch *batch, size_t first, size_t n,
                      char *errstr, size_t errstr_size);
int assay_batch_decode_all(struct assay_loop *loop, struct assay_batch *batch, char *errstr,
                           size_t errstr_size);
void assay_batch_reset_outputs(struct assay_batch *batch);
void assay_batch_release(struct assay_batch *batch);
/* Destroys the messages in hand (they were not applied). */
void assay_batch_discard_polled(struct assay_loop *loop);

/* assay_outbox.c: the events of one outbox row (sql/007_outbox_batches.sql). An event read
 * back points into the row's value; topic is not NUL-terminated; NULL pointers for NULL. */
struct outbox_event {
	int64_t source_offset;
	int32_t seq;
	const char *topic;
	size_t topic_len;
	const void *key;
	size_t key_len;
	const void *value;
	size_t value_len;
	const void *headers; /* assay_headers encoding */
	size_t headers_len;
};

/* Appends event e, caused by the message at source_offset, to the open bytea field of b. */
void assay_outbox_put(struct assay_copybin *b, int64_t source_offset, const struct out_event *e,
                      const void *headers, size_t headers_len);
/* The outbox rows of batch (COPY binary: stream, first_offset, next_offset, events) into b:
 * one per partition of parts the batch emitted for. *written: the events stored (fewer
 * than batch->nevents when some come from partitions not in parts). 0, or -1 when memory
 * ran out. */
int assay_outbox_rows(struct assay_copybin *b, const struct part *parts, size_t nparts,
                      const struct assay_batch *batch, size_t *written);
/* Reads the event at *pos of an outbox value of len bytes into *out and moves *pos past it:
 * 1, 0 at the end of the value, -1 when the bytes are malformed. */
int assay_outbox_get(const void *value, size_t len, size_t *pos, struct outbox_event *out);

/* assay_parked.c */
/* The bytes a record's headers take on the wire, as the size check counts them. */
size_t assay_headers_wire_size(const struct assay_headers *h);
/* Parks a copy of key, value and headers for message i of batch (seq -1: the message itself;
 * n: its n-th event, meant for target_topic). 0 or ASSAY_ERR_FATAL (memory). */
int assay_parked_add(struct assay_batch *batch, size_t i, int seq, const char *target_topic,
                     const void *key, size_t key_len, const void *value, size_t value_len,
                     const struct assay_headers *headers, const char *reason);
void assay_parked_release(struct parked *p);
/* The batch's parked rows, COPY'd in the batch transaction. */
int assay_parked_write(struct assay_loop *loop, struct assay_batch *batch, char *errstr,
                       size_t errstr_size);
/* Parks one event on its own (outside a batch transaction; a second call is a no-op). */
int assay_parked_insert(struct assay_loop *loop, const struct part *p, int64_t source_offset,
                        int seq, const char *target_topic, const void *key, size_t key_len,
                        const void *value, size_t value_len, const char *reason, char *errstr,
                        size_t errstr_size);

/* assay_relay.c */
void *assay_relay_main(void *loop);
int assay_relay_publish(struct assay_loop *loop, bool force, char *errstr, size_t errstr_size);
int assay_relay_collect(struct assay_loop *loop, bool wait, char *errstr, size_t errstr_size);
void assay_relay_forget(struct assay_loop *loop);
int assay_relay_take(struct assay_loop *loop, struct assay_batch *batch);
void assay_relay_job_free(struct relay_job *job);

#endif
