-- Bytes too large for the topic they were meant for. A dead letter or rejection whose original
-- message would not fit its topic's message limit carries a prefix, the size and the SHA-256,
-- and the whole message is kept here; an event the broker refuses for good (its topic's limit
-- was lowered after it was stored) is kept here and a dead letter says so. Rows are written in
-- the transaction that moves past the input (or before the relay publishes the dead letter)
-- and never deleted by assay: docs/runtime.md says how an operator fetches them.
CREATE TABLE assay_parked_values (
	consumer_group text NOT NULL,   -- the service's group (assay_offsets.consumer_group)
	topic text NOT NULL,            -- the input message's position
	partition integer NOT NULL,
	"offset" bigint NOT NULL,
	seq integer NOT NULL,           -- -1: the input message itself; n: the n-th event it caused
	target_topic text,              -- for an event: the topic it was meant for
	key bytea,
	value bytea,
	headers bytea,                  -- the message's headers (assay_headers encoding)
	value_size bigint NOT NULL,
	value_sha256 text NOT NULL,     -- hex
	reason text NOT NULL,
	parked_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (consumer_group, topic, partition, "offset", seq)
);
