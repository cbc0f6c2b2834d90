/*
 * check_main.h - the main() every Check suite shares: run the suite, turn the result into an
 * exit status.
 *
 * Header-only (the Makefile links no shared test object into the unit suites), and included
 * as "../check_main.h" because the unit suites are built without -Itests:
 *
 *     int main(void)
 *     {
 *         return check_run(arena_suite());
 *     }
 */
#ifndef SQUALL_TEST_CHECK_MAIN_H
#define SQUALL_TEST_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

/*
 * Runs every test of s in Check's normal mode (each test in a forked process, tcase timeouts
 * and CK_DEFAULT_TIMEOUT honoured, a summary on stdout) and frees the runner, and s with it:
 * s is taken over and must not be used afterwards.
 * Returns EXIT_SUCCESS when no test failed or errored, else EXIT_FAILURE, for main to return.
 */
static inline int check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
