/*
 * test_crc32c.c - formats/crc32c.h: the check value of the CRC-32C catalogue,
 * chaining over any split of the input, and the RFC 3720 B.4 vectors.
 */
#include <stdint.h>
#include <string.h>

#include "formats/crc32c.h"
#include "tests/unit/check_main.h"

START_TEST(test_crc32c_check_value)
{
	const uint8_t *s = (const uint8_t *)"123456789";
	ck_assert_uint_eq(fmt_crc32c(0, s, 9), FMT_CRC32C_CHECK);
	ck_assert_uint_eq(fmt_crc32c(0, s, 9), 0xE3069283u);
	for (size_t i = 0; i <= 9; i++)
		ck_assert_uint_eq(fmt_crc32c(fmt_crc32c(0, s, i), s + i, 9 - i), 0xE3069283u);
	ck_assert_uint_eq(fmt_crc32c(0, s, 0), 0);
	/* RFC 3720 B.4: 32 bytes of zeros, and of 0xff. */
	uint8_t z[32];
	memset(z, 0, sizeof(z));
	ck_assert_uint_eq(fmt_crc32c(0, z, sizeof(z)), 0x8A9136AAu);
	memset(z, 0xff, sizeof(z));
	ck_assert_uint_eq(fmt_crc32c(0, z, sizeof(z)), 0x62A8AB43u);
}
END_TEST

Suite *idp_test_suite(void)
{
	Suite *s = suite_create("crc32c");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_crc32c_check_value);
	suite_add_tcase(s, tc);
	return s;
}
