/*
 * client.h - helpers shared by the integration suites: raw sockets, a spawned host.
 */
#ifndef SQUALL_TEST_CLIENT_H
#define SQUALL_TEST_CLIENT_H

#endif
