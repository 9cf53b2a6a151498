/*
 * Shared test helpers: see assay_test.h.
 */
#include "assay_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static const char *required_env(const char *name)
{
	const char *value = getenv(name);

	if (value == NULL || *value == '\0')
		fail_msg("%s is not set: start the local stack (compose/stack up) and "
		         "eval \"$(compose/stack env)\", or run make test",
		         name);
	return value;
}

const char *assay_test_brokers(void)
{
	return required_env("ASSAY_KAFKA_BROKERS");
}

const char *assay_test_pg_url(void)
{
	return required_env("ASSAY_PG_URL");
}

void assay_test_unique(char *buf, size_t size, const char *prefix)
{
	static unsigned counter;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, size, "%s-%ld-%u-%lx", prefix, (long)getpid(), counter++,
	         (unsigned long)(ts.tv_nsec ^ (ts.tv_sec << 20)));
}

int32_t assay_test_day(int year, int month, int mday)
{
	/* days_from_civil (Howard Hinnant) */
	int64_t era;
	unsigned yoe, doy, doe;

	year -= month <= 2;
	era = (year >= 0 ? year : year - 399) / 400;
	yoe = (unsigned)(year - era * 400);
	doy = (153 * (unsigned)(month + (month > 2 ? -3 : 9)) + 2) / 5 + (unsigned)mday - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int32_t)(era * 146097 + (int64_t)doe - 719468);
}
