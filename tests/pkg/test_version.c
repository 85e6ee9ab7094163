/* SPDX-License-Identifier: MIT */
/* One source of truth for the version: meson.build's project version
 * (passed in as TH_PROJECT_VERSION), the header's TCPKIT_VERSION_* macros
 * and the library's tcpkit_version() must all agree. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef TH_PROJECT_VERSION
#error "TH_PROJECT_VERSION must be defined by tests/pkg/meson.build"
#endif

START_TEST(runtime_matches_project)
{
    ck_assert_str_eq(tcpkit_version(), TH_PROJECT_VERSION);
}
END_TEST

START_TEST(header_matches_project)
{
    char parts[32];
    snprintf(parts, sizeof parts, "%d.%d.%d", TCPKIT_VERSION_MAJOR, TCPKIT_VERSION_MINOR,
             TCPKIT_VERSION_PATCH);
    ck_assert_str_eq(TCPKIT_VERSION_STRING, TH_PROJECT_VERSION);
    ck_assert_str_eq(parts, TH_PROJECT_VERSION);
}
END_TEST

START_TEST(runtime_is_static_and_stable)
{
    /* A static string: the same pointer every call, never NULL. */
    const char *v = tcpkit_version();
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_eq(v, tcpkit_version());
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pkg-version");
    TCase *tc = th_tcase("version", 10);
    tcase_add_test(tc, runtime_matches_project);
    tcase_add_test(tc, header_matches_project);
    tcase_add_test(tc, runtime_is_static_and_stable);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
