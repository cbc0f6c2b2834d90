/*
 * client.c - helpers shared by the integration suites (see client.h).
 */
#include "client.h"
