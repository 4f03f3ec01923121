// SPDX-License-Identifier: MIT
/* The parsers behind the history commands' options: durations, sizes, times. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define SEC 1000000000LL

Test(store_util, durations_take_units_and_bare_seconds)
{
	int64_t v = -1;

	cr_assert_eq(util_parse_duration("90", &v), 0);
	cr_assert_eq(v, 90 * SEC);
	cr_assert_eq(util_parse_duration("90s", &v), 0);
	cr_assert_eq(v, 90 * SEC);
	cr_assert_eq(util_parse_duration("15m", &v), 0);
	cr_assert_eq(v, 15 * 60 * SEC);
	cr_assert_eq(util_parse_duration("1h30m", &v), 0);
	cr_assert_eq(v, 90 * 60 * SEC);
	cr_assert_eq(util_parse_duration("30d", &v), 0);
	cr_assert_eq(v, 30 * 86400 * SEC);
	cr_assert_eq(util_parse_duration("2w", &v), 0);
	cr_assert_eq(v, 14 * 86400 * SEC);
	cr_assert_eq(util_parse_duration("0s", &v), 0);
	cr_assert_eq(v, 0);
}

Test(store_util, durations_refuse_what_they_cannot_read)
{
	int64_t v = 7;

	cr_assert_eq(util_parse_duration("", &v), -EINVAL);
	cr_assert_eq(util_parse_duration("d", &v), -EINVAL);
	cr_assert_eq(util_parse_duration("5x", &v), -EINVAL);
	cr_assert_eq(util_parse_duration("-5m", &v), -EINVAL);
	cr_assert_eq(util_parse_duration("5 m", &v), -EINVAL);
	cr_assert_eq(util_parse_duration("99999999999w", &v), -EINVAL);
	cr_assert_eq(v, 7, "a failed parse wrote its result");
}

Test(store_util, sizes_are_powers_of_1024)
{
	int64_t v = -1;

	cr_assert_eq(util_parse_size("4096", &v), 0);
	cr_assert_eq(v, 4096);
	cr_assert_eq(util_parse_size("500M", &v), 0);
	cr_assert_eq(v, 500LL << 20);
	cr_assert_eq(util_parse_size("10G", &v), 0);
	cr_assert_eq(v, 10LL << 30);
	cr_assert_eq(util_parse_size("1.5GiB", &v), 0);
	cr_assert_eq(v, 3LL << 29);
	cr_assert_eq(util_parse_size("2k", &v), 0);
	cr_assert_eq(v, 2048);
	cr_assert_eq(util_parse_size("7B", &v), 0);
	cr_assert_eq(v, 7);
	cr_assert_eq(util_parse_size("10X", &v), -EINVAL);
	cr_assert_eq(util_parse_size("G", &v), -EINVAL);
	cr_assert_eq(util_parse_size("-1M", &v), -EINVAL);
	cr_assert_eq(util_parse_size("10GiBs", &v), -EINVAL);
}

Test(store_util, times_are_dates_epochs_or_durations_back_from_now)
{
	int64_t now = 1700000000LL * SEC, v = 0;
	struct tm tm = { .tm_year = 2024 - 1900, .tm_mon = 4, .tm_mday = 1, .tm_isdst = -1 };

	cr_assert_eq(util_parse_time("@1714567890", now, &v), 0);
	cr_assert_eq(v, 1714567890LL * SEC);
	cr_assert_eq(util_parse_time("2h", now, &v), 0);
	cr_assert_eq(v, now - 2 * 3600 * SEC);
	cr_assert_eq(util_parse_time("2024-05-01", now, &v), 0);
	cr_assert_eq(v, (int64_t)mktime(&tm) * SEC);
	tm.tm_hour = 13;
	tm.tm_min = 30;
	tm.tm_isdst = -1;
	cr_assert_eq(util_parse_time("2024-05-01 13:30", now, &v), 0);
	cr_assert_eq(v, (int64_t)mktime(&tm) * SEC);
	cr_assert_eq(util_parse_time("2024-05-01T13:30:00", now, &v), 0);
	cr_assert_eq(v, (int64_t)mktime(&tm) * SEC);
	/* Past what int64 nanoseconds hold: "never", not a wrapped negative. */
	cr_assert_eq(util_parse_time("2999-01-01", now, &v), 0);
	cr_assert_eq(v, INT64_MAX);
	cr_assert_eq(util_parse_time("yesterday", now, &v), -EINVAL);
	cr_assert_eq(util_parse_time("2024-05-01 25:00", now, &v), -EINVAL);
	cr_assert_eq(util_parse_time("@x", now, &v), -EINVAL);
}

Test(store_util, times_and_durations_print_for_people)
{
	char buf[40];

	cr_assert_str_eq(util_fmt_duration(850000, buf), "850 us");
	cr_assert_str_eq(util_fmt_duration(12 * 1000000LL, buf), "12 ms");
	cr_assert_str_eq(util_fmt_duration(3400 * 1000000LL, buf), "3.40 s");
	cr_assert_str_eq(util_fmt_duration(30 * 60 * SEC, buf), "30.0 min");
	cr_assert_str_eq(util_fmt_time_utc(1714567890LL * SEC + 5, buf),
			 "2024-05-01T12:51:30.000000005Z");
}
