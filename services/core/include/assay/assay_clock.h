#ifndef ASSAY_CLOCK_H
#define ASSAY_CLOCK_H

/*
 * An injectable clock: code that needs the time takes a const struct assay_clock * and asks
 * it, so tests move time by hand instead of sleeping. Two readings: wall time (milliseconds
 * since the Unix epoch, for timestamps) and monotonic time (milliseconds since an unspecified
 * start, for durations and deadlines; never goes back).
 */

#include <stdint.h>

enum assay_clock_kind {
	ASSAY_CLOCK_WALL,
	ASSAY_CLOCK_MONO,
};

struct assay_clock {
	/* the reading of kind, in milliseconds; ctx is the clock's own */
	int64_t (*now)(void *ctx, enum assay_clock_kind kind);
	void *ctx;
};

/* The system's clocks (CLOCK_REALTIME and CLOCK_MONOTONIC). Static, immutable, safe from any
 * thread. */
const struct assay_clock *assay_clock_system(void);

/* Milliseconds since the Unix epoch by c. */
static inline int64_t assay_clock_wall_ms(const struct assay_clock *c)
{
	return c->now(c->ctx, ASSAY_CLOCK_WALL);
}

/* Monotonic milliseconds by c. */
static inline int64_t assay_clock_mono_ms(const struct assay_clock *c)
{
	return c->now(c->ctx, ASSAY_CLOCK_MONO);
}

/*
 * A clock that stands still until told (a plain value for tests and replays): pass &mc->clock
 * wherever a clock is taken; it reads wall_ms and mono_ms. Not thread-safe: set it from the
 * thread that reads it, or between runs.
 */
struct assay_clock_manual {
	struct assay_clock clock;
	int64_t wall_ms;
	int64_t mono_ms;
};

/* Starts the manual clock at the given readings. */
void assay_clock_manual_init(struct assay_clock_manual *mc, int64_t wall_ms, int64_t mono_ms);

/* Moves both readings forward by ms (ms >= 0; a negative ms moves only the wall time back,
 * as a system clock step would, since monotonic time never goes back). */
void assay_clock_manual_advance(struct assay_clock_manual *mc, int64_t ms);

/* Sets the wall time alone (a clock step); monotonic time is untouched. */
void assay_clock_manual_set_wall(struct assay_clock_manual *mc, int64_t wall_ms);

#endif
