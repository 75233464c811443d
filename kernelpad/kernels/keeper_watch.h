/* What the keeper's watch in C (keeper_watch.c) and its relay (keeper_relay.c) share: growable
   byte buffers, the clock, and the relay's interface. See keeper_watch.c. */

#ifndef KERNELPAD_KEEPER_WATCH_H
#define KERNELPAD_KEEPER_WATCH_H

#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHANNELS 5

struct buffer {
    char *data;
    size_t len, cap;
};

static inline void append(struct buffer *b, const char *data, size_t len) {
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (grown == NULL) {
            perror("keeper-watch: out of memory");
            exit(70); /* not reached in practice; the clean-up then runs from the sweep */
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static inline void consume(struct buffer *b, size_t count) {
    memmove(b->data, b->data + count, b->len - count);
    b->len -= count;
}

static inline void release(struct buffer *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- the relay of a TCP kernel: relay.py's Link and Relay (keeper_relay.c) ---- */

struct link {
    int server, kernel; /* kernel: -1 until dialled */
    int port;
    int connected, closed;
    double retry_at, give_up_at;
    struct buffer to_kernel, to_server;
};

struct relay {
    int listeners[CHANNELS], ports[CHANNELS], count;
    struct link *links;
    size_t links_len, links_cap;
    double accept_after;
};

/* Fills `fds` (room for `room` entries) with what the relay waits for: its listeners, then two
   entries a link (the server's end, the kernel's); returns how many it filled. */
size_t relay_poll(struct relay *r, struct pollfd *fds, size_t room);
/* Acts on what poll said of the entries relay_poll filled (`count` of them). */
void relay_handle(struct relay *r, const struct pollfd *fds, size_t count);
/* Seconds until a connection tries the kernel's port again, if one waits to, or until
   connections are taken again; negative: none. */
double relay_timeout(const struct relay *r);
void relay_close(struct relay *r);

#endif
