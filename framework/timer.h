/*
 * timer.h - callbacks on the loop: sq_add_callback, sq_call_later, sq_every.
 */
#ifndef SQUALL_TIMER_H
#define SQUALL_TIMER_H

struct loop;

/* Stops and frees every timer and periodic callback of the loop (at loop_free). */
void timer_free_all(struct loop *l);

#endif
