/*
 * The system clock and the manual clock behind struct assay_clock. The system clock is the
 * only one services create; tests hand a manual one to the code they drive.
 */
#include "assay_clock.h"

#include <time.h>

static int64_t system_now(void *ctx, enum assay_clock_kind kind)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(kind == ASSAY_CLOCK_WALL ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct assay_clock system_clock = {system_now, NULL};

const struct assay_clock *assay_clock_system(void)
{
	return &system_clock;
}

static int64_t manual_now(void *ctx, enum assay_clock_kind kind)
{
	const struct assay_clock_manual *mc = ctx;

	return kind == ASSAY_CLOCK_WALL ? mc->wall_ms : mc->mono_ms;
}

void assay_clock_manual_init(struct assay_clock_manual *mc, int64_t wall_ms, int64_t mono_ms)
{
	mc->clock.now = manual_now;
	mc->clock.ctx = mc;
	mc->wall_ms = wall_ms;
	mc->mono_ms = mono_ms;
}

void assay_clock_manual_advance(struct assay_clock_manual *mc, int64_t ms)
{
	mc->wall_ms += ms;
	if (ms > 0)
		mc->mono_ms += ms;
}

void assay_clock_manual_set_wall(struct assay_clock_manual *mc, int64_t wall_ms)
{
	mc->wall_ms = wall_ms;
}
