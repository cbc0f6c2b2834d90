/*
 * coro.c - context switch, stack pool, guard pages (see coro.h).
 */
#include "coro.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef VALGRIND_STACK_REGISTER
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CORO_ASAN 1
#endif

static size_t page_size(void)
{
    static size_t page;

    if (!page)
        page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

/* ---- Stacks ---- */

void coro_stack_pool_init(struct coro_stack_pool *p, size_t stack_size, size_t max_free)
{
    size_t pg = page_size();

    p->stack_size = (stack_size + pg - 1) / pg * pg;
    p->free = NULL;
    p->nfree = 0;
    p->max_free = max_free;
}

static void stack_unmap(struct coro_stack *s)
{
    VALGRIND_STACK_DEREGISTER(s->valgrind_id);
    munmap(s->base, s->size + page_size());
    free(s);
}

void coro_stack_pool_deinit(struct coro_stack_pool *p)
{
    while (p->free) {
        struct coro_stack *s = p->free;
        p->free = s->next;
        stack_unmap(s);
    }
    p->nfree = 0;
}

struct coro_stack *coro_stack_get(struct coro_stack_pool *p)
{
    struct coro_stack *s = p->free;

    if (s) {
        p->free = s->next;
        p->nfree--;
        return s;
    }
    s = malloc(sizeof(*s));
    if (!s)
        return NULL;
    s->size = p->stack_size;
    /* Pages are only backed once touched, so a 64k stack costs what the handler uses. */
    s->base = mmap(NULL, s->size + page_size(), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s->base == MAP_FAILED || mprotect(s->base, page_size(), PROT_NONE) < 0) {
        if (s->base != MAP_FAILED)
            munmap(s->base, s->size + page_size());
        free(s);
        return NULL;
    }
    s->valgrind_id =
        VALGRIND_STACK_REGISTER(s->base + page_size(), s->base + page_size() + s->size);
    return s;
}

void coro_stack_put(struct coro_stack_pool *p, struct coro_stack *s)
{
    if (p->nfree >= p->max_free) {
        stack_unmap(s);
        return;
    }
    s->next = p->free;
    p->free = s;
    p->nfree++;
}

bool coro_stack_is_guard(const struct coro_stack *s, const void *addr)
{
    const char *a = addr;
    return a >= s->base && a < s->base + page_size();
}

/* ---- Switching ---- */

#ifdef CORO_ASAN
/* The thread's own stack, learnt at the first switch away from it. */
static __thread const void *thread_stack_bottom;
static __thread size_t thread_stack_size;
#endif

/* First code on a new stack: tell the sanitizer the switch is over, then run the entry. */
static void coro_boot(struct coro_ctx *ctx) __attribute__((used));
static void coro_boot(struct coro_ctx *ctx)
{
#ifdef CORO_ASAN
    __sanitizer_finish_switch_fiber(NULL, &thread_stack_bottom, &thread_stack_size);
#endif
    ctx->entry(ctx->arg);
    abort(); /* an entry never returns */
}

#ifndef CORO_UCONTEXT
void coro_switch_asm(struct coro_ctx *from, struct coro_ctx *to);

/* x86-64 System V: rbx, rbp, r12-r15 and rsp are callee-saved; the return address is on
   the stack. A new context starts in coro_trampoline with r12 = ctx, r13 = coro_boot. */
__asm__(".text\n"
        ".globl coro_switch_asm\n"
        ".hidden coro_switch_asm\n"
        ".type coro_switch_asm,@function\n"
        "coro_switch_asm:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    movq %rsp, (%rdi)\n"
        "    movq (%rsi), %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size coro_switch_asm,.-coro_switch_asm\n"
        ".type coro_trampoline,@function\n"
        "coro_trampoline:\n"
        "    movq %r12, %rdi\n"
        "    callq *%r13\n"
        "    ud2\n"
        ".size coro_trampoline,.-coro_trampoline\n");

void coro_trampoline(void);

void coro_ctx_make(struct coro_ctx *ctx, struct coro_stack *s, coro_entry_fn entry, void *arg)
{
    uintptr_t top = (uintptr_t)(s->base + page_size() + s->size) & ~(uintptr_t)15;
    /* Seven words popped by the switch (r15 r14 r13 r12 rbx rbp, return address) leave
       rsp 16-byte aligned at the trampoline, as its call expects. */
    void **sp = (void **)(top - 72);

#ifdef CORO_ASAN
    /* A coroutine's last frames never return: clear what ASan marked on the reused stack. */
    __asan_unpoison_memory_region(s->base + page_size(), s->size);
#endif
    memset(sp, 0, 9 * sizeof(void *));
    sp[2] = (void *)coro_boot;
    sp[3] = ctx;
    sp[6] = (void *)coro_trampoline;
    ctx->sp = sp;
    ctx->entry = entry;
    ctx->arg = arg;
}
#else
static void coro_uc_boot(unsigned hi, unsigned lo)
{
    coro_boot((struct coro_ctx *)(((uintptr_t)hi << 32) | (uintptr_t)lo));
}

void coro_ctx_make(struct coro_ctx *ctx, struct coro_stack *s, coro_entry_fn entry, void *arg)
{
    uintptr_t p = (uintptr_t)ctx;

#ifdef CORO_ASAN
    __asan_unpoison_memory_region(s->base + page_size(), s->size);
#endif
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = s->base + page_size();
    ctx->uc.uc_stack.ss_size = s->size;
    ctx->uc.uc_link = NULL;
    ctx->entry = entry;
    ctx->arg = arg;
    makecontext(&ctx->uc, (void (*)(void))coro_uc_boot, 2, (unsigned)(p >> 32), (unsigned)p);
}
#endif

void coro_switch(struct coro_ctx *from, struct coro_ctx *to, const struct coro_stack *to_stack)
{
#ifdef CORO_ASAN
    void *fake = NULL;
    if (to_stack)
        __sanitizer_start_switch_fiber(&fake, to_stack->base + page_size(), to_stack->size);
    else
        __sanitizer_start_switch_fiber(&fake, thread_stack_bottom, thread_stack_size);
#else
    (void)to_stack;
#endif
#ifdef CORO_UCONTEXT
    swapcontext(&from->uc, &to->uc);
#else
    coro_switch_asm(from, to);
#endif
#ifdef CORO_ASAN
    __sanitizer_finish_switch_fiber(fake, &thread_stack_bottom, &thread_stack_size);
#endif
}

/* ---- Stack overflow ---- */

static bool (*guard_is_overflow)(const void *addr);
static void (*guard_report)(const void *addr);
static void (*guard_crash)(int sig);
static struct sigaction guard_prev_segv, guard_prev_bus;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    struct sigaction *prev = sig == SIGSEGV ? &guard_prev_segv : &guard_prev_bus;

    if (guard_is_overflow && guard_is_overflow(si->si_addr)) {
        guard_report(si->si_addr);
        signal(sig, SIG_DFL); /* the fault repeats on return and the process dies of it */
        return;
    }
    /* Not ours: hand it to whoever handled it before (a sanitizer), or die of it. */
    if (guard_crash)
        guard_crash(sig);
    if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction)
        prev->sa_sigaction(sig, si, uc);
    else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN && prev->sa_handler)
        prev->sa_handler(sig);
    else
        signal(sig, SIG_DFL);
}

void coro_guard_install(bool (*is_overflow)(const void *addr), void (*report)(const void *addr),
                        void (*crash)(int sig))
{
    static __thread void *altstack;
    const size_t altsize = 1 << 16; /* sanitizers' reports need room */

    if (!altstack) {
        altstack = mmap(NULL, altsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (altstack == MAP_FAILED) {
            altstack = NULL;
            return;
        }
        stack_t ss = {.ss_sp = altstack, .ss_size = altsize};
        sigaltstack(&ss, NULL);
    }
    if (guard_is_overflow)
        return; /* the handler is process-wide: installed once */
    guard_is_overflow = is_overflow;
    guard_report = report;
    guard_crash = crash;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &guard_prev_segv);
    sigaction(SIGBUS, &sa, &guard_prev_bus);
}
