/*
 * shm.h - memory the worker processes of one host share (what nginx's shared zones are for):
 * the rate-limit tables, so that a limit holds for the whole host, not per worker.
 *
 * One anonymous shared mapping, made before the workers are forked (the master's, or the
 * single process's own), so it sits at the same address in every process and pointers into
 * it are valid in all of them. It is handed out in named blocks: the first process to ask
 * for a name makes the block, the others find it. Address space is reserved, memory is
 * only used as blocks are.
 */
#ifndef SQUALL_SHM_H
#define SQUALL_SHM_H

#include <stdbool.h>
#include <stddef.h>

#define SHM_SIZE ((size_t)1 << 30) /* reserved, not used: NORESERVE */
#define SHM_NAME_MAX 256           /* longer names are refused */

/* Makes this process's region (the workers it forks later inherit it). 0, or -1 when the
   mapping failed. A second call does nothing. */
int shm_init(void);

/*
 * The block named name, of size bytes, 16-aligned: found if any process made it before
 * (size must then be the same), else made and passed to init(mem, arg) first, all under the
 * region's lock so that no process sees a block before it is initialised. NULL when there
 * is no region, the region is full, or name is too long.
 */
void *shm_block(const char *name, size_t size, void (*init)(void *mem, void *arg), void *arg);

#endif
