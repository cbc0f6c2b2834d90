/*
 * coro.h - stackful coroutines: a context switch and pooled stacks with guard pages.
 *
 * This layer knows nothing of the loop: it creates a coroutine on a stack, switches into
 * it and back. async.h builds waiting, waking, deadlines and cancellation on top.
 *
 * The switch saves only the callee-saved registers and the stack pointer (x86-64 assembly;
 * ucontext elsewhere, or with -DCORO_UCONTEXT), so it makes no system call.
 */
#ifndef SQUALL_CORO_H
#define SQUALL_CORO_H

#include <stdbool.h>
#include <stddef.h>

#if !defined(__x86_64__) && !defined(CORO_UCONTEXT)
#define CORO_UCONTEXT 1
#endif
#ifdef CORO_UCONTEXT
#include <ucontext.h>
#endif

typedef void (*coro_entry_fn)(void *arg);

struct coro_ctx {
#ifdef CORO_UCONTEXT
    ucontext_t uc;
#else
    void *sp; /* the saved stack pointer; the registers are on that stack */
#endif
    coro_entry_fn entry; /* what a new context runs first */
    void *arg;
};

/* A stack from the pool: [guard page][usable bytes]. */
struct coro_stack {
    struct coro_stack *next; /* in the pool's free list */
    char *base;              /* the mapping, guard page first */
    size_t size;             /* usable bytes, above the guard page */
    unsigned valgrind_id;
};

struct coro_stack_pool {
    size_t stack_size; /* usable bytes per stack, a multiple of the page size */
    struct coro_stack *free;
    size_t nfree, max_free;
};

/* stack_size is rounded up to whole pages; at most max_free idle stacks are kept. */
void coro_stack_pool_init(struct coro_stack_pool *p, size_t stack_size, size_t max_free);

/* Unmaps every idle stack. Stacks in use are the caller's to give back first. */
void coro_stack_pool_deinit(struct coro_stack_pool *p);

/* A stack from the pool or a new mapping; NULL when memory is exhausted. */
struct coro_stack *coro_stack_get(struct coro_stack_pool *p);
void coro_stack_put(struct coro_stack_pool *p, struct coro_stack *s);

/* Whether addr falls in s's guard page (a stack overflow). */
bool coro_stack_is_guard(const struct coro_stack *s, const void *addr);

/* Prepares ctx to run entry(arg) on stack s at the first coro_switch into it. entry must
   never return: it switches away for good (or loops, as async.c's does). */
void coro_ctx_make(struct coro_ctx *ctx, struct coro_stack *s, coro_entry_fn entry, void *arg);

/* Saves the running context in from and continues the one in to. to_stack is the stack
   the target runs on (NULL for the thread's own stack), for sanitizers. */
void coro_switch(struct coro_ctx *from, struct coro_ctx *to, const struct coro_stack *to_stack);

/* Installs the stack-overflow handler for this thread: SIGSEGV/SIGBUS on an alternate
   signal stack. is_overflow(addr) says whether a fault address is a coroutine's guard page;
   if so, report(addr) logs (async-signal-safe) and the process dies of the signal. Any
   other fault is told to crash(sig) (also async-signal-safe; may be NULL) before it goes to
   the previous handler (a sanitizer's) or kills the process. */
void coro_guard_install(bool (*is_overflow)(const void *addr), void (*report)(const void *addr),
                        void (*crash)(int sig));

#endif
