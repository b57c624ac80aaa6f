/*
 * check_main.h - the one function every unit test file defines.
 * tests/unit/check_main.c runs that suite and prints "RESULT <passed> <failed>"
 * for tests/run-suite.
 */
#ifndef IDP_TESTS_CHECK_MAIN_H
#define IDP_TESTS_CHECK_MAIN_H

#include <check.h>

/* The suite of this test binary; called once by main(). */
Suite *idp_test_suite(void);

#endif /* IDP_TESTS_CHECK_MAIN_H */
