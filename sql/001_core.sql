-- The runtime's own tables: the built-in schema registry, consumed offsets stored with the
-- state they produced, and the transactional outbox of events still to be published.

-- Schema ids of the Confluent framing. The same normalized schema text always has the same
-- id; ids are never reused or renumbered.
CREATE TABLE assay_schemas (
	id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	fingerprint bytea NOT NULL UNIQUE,  -- SHA-256 of schema_text
	full_name text NOT NULL,            -- e.g. org.assay.v1.EvidenceSubmitted
	schema_text text NOT NULL,          -- normalized JSON as written by avro-c
	registered_at timestamptz NOT NULL DEFAULT now()
);

-- The next offset to consume, per consumer group and partition. It moves only in the
-- transaction that applies the messages before it, with a compare-and-set on its previous
-- value: a stale owner after a rebalance updates no row and rolls back. id names the
-- (group, topic, partition) stream in the outbox.
CREATE TABLE assay_offsets (
	id integer GENERATED ALWAYS AS IDENTITY UNIQUE,
	consumer_group text NOT NULL,
	topic text NOT NULL,
	partition integer NOT NULL,
	next_offset bigint NOT NULL CHECK (next_offset >= 0),
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (consumer_group, topic, partition)
);

-- Events written in the same transaction as the state change that caused them, positioned
-- by the input message that caused them (stream = assay_offsets.id, source_offset, seq).
-- The relay publishes them in that order with a transactional producer and commits the
-- input position to Kafka in the same transaction; rows below the position Kafka holds are
-- deleted afterwards.
CREATE TABLE assay_outbox (
	stream integer NOT NULL,            -- assay_offsets.id (no foreign key: a per-row check)
	source_offset bigint NOT NULL,
	seq integer NOT NULL,               -- order among the events of one input message
	topic text NOT NULL,
	key bytea,
	value bytea,
	headers bytea,                      -- assay_headers encoding
	PRIMARY KEY (stream, source_offset, seq)
);
