/*
 * check_main.c - main() shared by every unit test binary: runs the file's
 * Check suite (each test forked, so a crash under ASan is reported as an error
 * and the summary still prints) and prints the counts for tests/run-suite.
 */
#include <stdio.h>

#include "tests/unit/check_main.h"

int main(void)
{
	SRunner *sr = srunner_create(idp_test_suite());
	srunner_run_all(sr, CK_NORMAL);
	int run = srunner_ntests_run(sr);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	printf("RESULT %d %d\n", run - failed, failed);
	return failed == 0 ? 0 : 1;
}
