/*
 * test_throttle.c - server/throttle.h with explicit times: a burst is
 * allowed then refused with the Retry-After the rate gives, the bucket
 * refills with time and never beyond the burst, addresses do not share a
 * bucket, more addresses than slots only ever reset buckets (nobody under
 * the limit is refused), and a missing or oversized key is not throttled.
 */
#include <stdio.h>
#include <string.h>

#include "server/throttle.h"
#include "tests/unit/check_main.h"

static struct srv_throttle *make(unsigned per_minute, unsigned burst)
{
	struct srv_throttle *t = NULL;
	ck_assert_int_eq(srv_throttle_new(per_minute, burst, &t, NULL), IDP_OK);
	return t;
}

START_TEST(test_srv_throttle_take_burst_then_refused_and_refill)
{
	struct srv_throttle *t = make(60, 3); /* one a second after 3 */
	int64_t ra = -1;
	for (int i = 0; i < 3; i++)
		ck_assert(srv_throttle_take(t, "127.0.0.2", 100.0, &ra));
	ck_assert_int_eq(ra, 0);
	ck_assert(!srv_throttle_take(t, "127.0.0.2", 100.0, &ra));
	ck_assert_int_eq(ra, 1);
	ck_assert(!srv_throttle_take(t, "127.0.0.2", 100.5, &ra));
	ck_assert_int_eq(ra, 1);
	ck_assert_uint_eq(srv_throttle_refused(t), 2);
	/* One second later: one token; the next is refused again. */
	ck_assert(srv_throttle_take(t, "127.0.0.2", 101.0, &ra));
	ck_assert(!srv_throttle_take(t, "127.0.0.2", 101.0, &ra));
	/* A long pause refills to the burst, not beyond. */
	for (int i = 0; i < 3; i++)
		ck_assert(srv_throttle_take(t, "127.0.0.2", 10000.0, &ra));
	ck_assert(!srv_throttle_take(t, "127.0.0.2", 10000.0, &ra));
	/* Another address has its own bucket. */
	ck_assert(srv_throttle_take(t, "127.0.0.1", 10000.0, &ra));
	/* Time going backwards (never with a monotonic clock) adds nothing. */
	ck_assert(!srv_throttle_take(t, "127.0.0.2", 50.0, &ra));
	srv_throttle_free(t);
}
END_TEST

START_TEST(test_srv_throttle_take_retry_after_from_rate)
{
	struct srv_throttle *t = make(6, 1); /* one every 10 s */
	int64_t ra = 0;
	ck_assert(srv_throttle_take(t, "2001:db8::/64", 0.0, &ra));
	ck_assert(!srv_throttle_take(t, "2001:db8::/64", 0.0, &ra));
	ck_assert_int_eq(ra, 10);
	ck_assert(!srv_throttle_take(t, "2001:db8::/64", 7.5, &ra));
	ck_assert_int_eq(ra, 3);
	ck_assert(srv_throttle_take(t, "2001:db8::/64", 10.0, &ra));
	srv_throttle_free(t);
}
END_TEST

START_TEST(test_srv_throttle_take_many_addresses_bounded)
{
	/* Twice as many addresses as slots, each once: nobody refused. */
	struct srv_throttle *t = make(1, 1);
	int64_t ra = 0;
	char key[32];
	for (unsigned i = 0; i < 2 * SRV_THROTTLE_SLOTS; i++) {
		snprintf(key, sizeof(key), "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		ck_assert_msg(srv_throttle_take(t, key, 1.0, &ra), "%s refused", key);
	}
	ck_assert_uint_eq(srv_throttle_refused(t), 0);
	/* Keys the table cannot hold are not throttled (and not stored). */
	char big[SRV_THROTTLE_KEY_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int i = 0; i < 3; i++) {
		ck_assert(srv_throttle_take(t, big, 1.0, &ra));
		ck_assert(srv_throttle_take(t, NULL, 1.0, &ra));
		ck_assert(srv_throttle_take(t, "", 1.0, &ra));
	}
	srv_throttle_free(t);
	struct srv_throttle *bad = NULL;
	ck_assert_int_eq(srv_throttle_new(0, 5, &bad, NULL), IDP_E_ARG);
	ck_assert_ptr_null(bad);
	srv_throttle_free(NULL);
}
END_TEST

/* Peek takes nothing while allowed (a bucket charged only on failures):
 * any number of peeks pass; after burst takes, a peek is refused, counted,
 * with the Retry-After of the rate. */
START_TEST(test_srv_throttle_peek_takes_nothing)
{
	struct srv_throttle *t = make(1, 2); /* one a minute after 2 */
	int64_t ra = -1;
	for (int i = 0; i < 10; i++)
		ck_assert(srv_throttle_peek(t, "dev-1", 100.0, &ra));
	ck_assert(srv_throttle_take(t, "dev-1", 100.0, &ra));
	ck_assert(srv_throttle_peek(t, "dev-1", 100.0, &ra));
	ck_assert(srv_throttle_take(t, "dev-1", 100.0, &ra));
	ck_assert(!srv_throttle_peek(t, "dev-1", 100.0, &ra));
	ck_assert_int_eq(ra, 60);
	ck_assert_uint_eq(srv_throttle_refused(t), 1);
	ck_assert(srv_throttle_peek(t, "dev-2", 100.0, &ra));
	ck_assert(srv_throttle_peek(t, "dev-1", 160.0, &ra));
	srv_throttle_free(t);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("throttle");
	TCase *tc = tcase_create("buckets");
	tcase_add_test(tc, test_srv_throttle_take_burst_then_refused_and_refill);
	tcase_add_test(tc, test_srv_throttle_take_retry_after_from_rate);
	tcase_add_test(tc, test_srv_throttle_take_many_addresses_bounded);
	tcase_add_test(tc, test_srv_throttle_peek_takes_nothing);
	suite_add_tcase(s, tc);
	return s;
}
