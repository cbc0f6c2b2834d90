/*
 * list.h - intrusive doubly linked lists with a head pointer.
 *
 * An element has a pair of pointer fields (named by the caller, so one element can be on
 * several lists); the list is a pointer to its first element.
 */
#ifndef SQUALL_LIST_H
#define SQUALL_LIST_H

/* Puts x first in the list that head points to. */
#define LIST_PUSH(head, x, prev, next)                                                             \
    do {                                                                                           \
        (x)->prev = NULL;                                                                          \
        (x)->next = (head);                                                                        \
        if (head)                                                                                  \
            (head)->prev = (x);                                                                    \
        (head) = (x);                                                                              \
    } while (0)

/* Takes x off the list that head points to. */
#define LIST_UNLINK(head, x, prev, next)                                                           \
    do {                                                                                           \
        if ((x)->prev)                                                                             \
            (x)->prev->next = (x)->next;                                                           \
        else                                                                                       \
            (head) = (x)->next;                                                                    \
        if ((x)->next)                                                                             \
            (x)->next->prev = (x)->prev;                                                           \
    } while (0)

#endif
