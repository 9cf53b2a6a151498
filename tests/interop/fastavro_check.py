"""Interoperability check: decodes assay's framed events with fastavro, an Avro library we
did not write, and re-encodes them byte for byte.

usage: fastavro_check.py SCHEMAS_DIR FRAMES_DIR
Each FRAMES_DIR/<name>.bin holds one message in the Confluent framing (magic byte 0, 4-byte
big-endian schema id, Avro binary body) written by assay's codec for schemas/<name>.avsc.
Prints one "ok <name> id=<id>" line per message; exits 1 on the first mismatch.
"""
import io
import json
import os
import struct
import sys

import fastavro


def main(schemas_dir, frames_dir):
    names = sorted(f[:-4] for f in os.listdir(frames_dir) if f.endswith(".bin"))
    if not names:
        print("no frames in " + frames_dir)
        return 1
    for name in names:
        with open(os.path.join(frames_dir, name + ".bin"), "rb") as f:
            frame = f.read()
        if len(frame) < 5 or frame[0] != 0:
            print("bad frame header: " + name)
            return 1
        (schema_id,) = struct.unpack(">I", frame[1:5])
        body = frame[5:]
        with open(os.path.join(schemas_dir, name + ".avsc")) as f:
            schema = fastavro.parse_schema(json.load(f))
        record = fastavro.schemaless_reader(io.BytesIO(body), schema)
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, record)
        if out.getvalue() != body:
            print("re-encoding differs: " + name)
            return 1
        print("ok %s id=%d" % (name, schema_id))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
