/*
 * assay-plan's commands off the wire: a frame of assay.audit.commands, decoded with the
 * generated contract of its writer schema (contract_<command>.h), as the plain struct
 * plan_cmd the rules read (NUL-terminated strings, the plan's enums).
 *
 * Threads: as the struct assay_contracts given (one thread).
 */
#ifndef PLAN_COMMAND_H
#define PLAN_COMMAND_H

#include "plan_rules.h"
#include "assay_arena.h"
#include "assay_contract.h"

/* The command kind of a record full name ("org.assay.v1.OpenAudit"), or -1. */
int plan_cmd_kind(const char *full_name);

/*
 * Decodes frame (len bytes, borrowed) into *cmd: dispatches on the frame's writer schema
 * (assay_contract_frame_type) to the decoder of that command. Strings and arrays of *cmd are
 * allocated from arena (valid until its reset; nothing points into frame). Returns 0;
 * ASSAY_ERR_REJECT with the reason when the frame is not an audit command (another record
 * type, unknown schema id, bad framing) or its body is malformed; ASSAY_ERR_RETRY when the
 * schema registry is unreachable; ASSAY_ERR_FATAL when memory runs out.
 */
int plan_command_decode(struct assay_contracts *cx, const void *frame, size_t len,
                        struct assay_arena *arena, struct plan_cmd *cmd, char *errstr,
                        size_t errstr_size);

#endif
