/* SPDX-License-Identifier: MIT */
/* The runtime version: compiled from project(version:) in meson.build, the
 * one place the version is written (the build checks the header's macros
 * against it). */
#include "internal.h"

const char *tcpkit_version(void)
{
    return TCPKIT_BUILD_VERSION;
}
