/*
 * timer.h - callbacks on the loop: sq_add_callback, sq_call_later, sq_every.
 */
#ifndef SQUALL_TIMER_H
#define SQUALL_TIMER_H

struct loop;
struct sq_plugin_ctx;

/* Stops and frees every timer and periodic callback of the loop (at loop_free). */
void timer_free_all(struct loop *l);

/* Stops the periodic callbacks plugin started (it is retiring); a run in progress ends on
   its own. One-shot timers keep it alive and still fire. */
void timer_stop_plugin(struct loop *l, struct sq_plugin_ctx *plugin);

#endif
