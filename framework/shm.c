/*
 * shm.c - the host's shared region (see shm.h).
 *
 * Layout: a header (lock, bump offset, directory of named blocks), then the blocks. Blocks
 * are never freed: a name stands for one configuration of one zone, and a host meets few.
 */
#include "shm.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define SHM_BLOCKS 1024

struct block {
    char name[SHM_NAME_MAX];
    size_t off, size;
};

struct region {
    pthread_mutex_t lock;
    size_t used; /* bytes from the start, header included */
    size_t nblocks;
    struct block blocks[SHM_BLOCKS];
};

static struct region *region;

int shm_init(void)
{
    pthread_mutexattr_t attr;

    if (region)
        return 0;
    void *p = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    region = p;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&region->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    region->used = (sizeof(*region) + 15) & ~(size_t)15;
    return 0;
}

/* Under the lock: the block named name, or a new one; NULL when full. */
static void *find_or_make(const char *name, size_t size, void (*init)(void *, void *), void *arg)
{
    for (size_t i = 0; i < region->nblocks; i++)
        if (strcmp(region->blocks[i].name, name) == 0)
            return region->blocks[i].size == size ? (char *)region + region->blocks[i].off : NULL;
    size = (size + 15) & ~(size_t)15;
    if (region->nblocks == SHM_BLOCKS || size > SHM_SIZE - region->used)
        return NULL;
    struct block *b = &region->blocks[region->nblocks];
    strcpy(b->name, name);
    b->off = region->used;
    b->size = size;
    void *mem = (char *)region + b->off;
    init(mem, arg);
    region->used += size;
    region->nblocks++; /* last: a block only counts once it is made */
    return mem;
}

void *shm_block(const char *name, size_t size, void (*init)(void *mem, void *arg), void *arg)
{
    if (!region || strlen(name) >= SHM_NAME_MAX)
        return NULL;
    /* A process that died holding the lock had not yet counted the block it was making:
       the directory is consistent as it is. */
    if (pthread_mutex_lock(&region->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&region->lock);
    void *mem = find_or_make(name, size, init, arg);
    pthread_mutex_unlock(&region->lock);
    return mem;
}
