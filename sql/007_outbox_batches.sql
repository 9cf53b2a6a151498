-- The outbox as one row per stream and batch instead of one row per event: the events a
-- batch caused on one input partition are stored together in one value, so a batch writes
-- a few rows instead of one per event (no per-event tuple and index entry to write, delete
-- and vacuum), and lz4 compresses what the events of a batch repeat. docs/runtime.md.

-- An outbox still holding unpublished events must be drained by the version that wrote it.
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM assay_outbox) THEN
		RAISE EXCEPTION 'assay_outbox still holds unpublished events: run the previous version '
			'until they are published (the table is empty), then upgrade';
	END IF;
END
$$;

DROP TABLE assay_outbox;

-- The events caused by the input messages [first_offset, next_offset) of one stream
-- (assay_offsets.id), in publishing order, in one value: for each event its source offset
-- (8 bytes) and sequence (4), then topic, key, value and headers (assay_headers encoding),
-- each as a 4-byte length (-1 for NULL) and its bytes; integers big-endian. The relay
-- publishes them and commits the input position to Kafka in the same transaction; rows
-- wholly below the position Kafka holds are deleted afterwards.
CREATE TABLE assay_outbox (
	stream integer NOT NULL,            -- assay_offsets.id (no foreign key: a per-row check)
	first_offset bigint NOT NULL,       -- source offset of the first event
	next_offset bigint NOT NULL,        -- source offset of the last event, plus one
	events bytea COMPRESSION lz4 NOT NULL,
	PRIMARY KEY (stream, first_offset),
	CHECK (next_offset > first_offset)
);
