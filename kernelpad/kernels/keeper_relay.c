/* The relay of a TCP kernel, in the keeper's watch in C: relay.py's Link and Relay, step for
   step (see keeper_watch.c). Each connection of the server's to one of the Unix sockets the
   keeper listens on is carried to the kernel's TCP port on the loopback of the network
   namespace the keeper and the kernel share, byte for byte, both ways. */

#include "keeper_watch.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_CHUNK 65536
#define RETRY 0.05       /* seconds between attempts to reach a kernel not listening yet */
#define PATIENCE 30.0    /* seconds a server's connection waits for the kernel to listen */
#define ACCEPT_PAUSE 0.1 /* seconds without taking connections once descriptors run out */

static void link_close(struct link *l) {
    l->closed = 1;
    close(l->server);
    if (l->kernel >= 0) close(l->kernel);
    l->kernel = -1;
    release(&l->to_kernel);
    release(&l->to_server);
}

static void link_later(struct link *l) {
    l->kernel = -1;
    if (now() >= l->give_up_at)
        link_close(l);
    else
        l->retry_at = now() + RETRY;
}

static void link_dial(struct link *l) {
    int sock = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        link_close(l); /* no socket to be had (EMFILE, ENOBUFS): this connection goes */
        return;
    }
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)l->port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0 && errno != EINPROGRESS) {
        close(sock);
        link_later(l);
        return;
    }
    l->kernel = sock;
}

static void link_dialled(struct link *l) {
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(l->kernel, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
        close(l->kernel);
        link_later(l);
    } else {
        l->connected = 1;
    }
}

static void link_flush(struct link *l, int sink) {
    struct buffer *pending = sink == l->kernel ? &l->to_kernel : &l->to_server;
    if (pending->len == 0) return;
    ssize_t sent = send(sink, pending->data, pending->len, MSG_NOSIGNAL);
    if (sent < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) link_close(l);
        return;
    }
    consume(pending, (size_t)sent);
}

/* Read what `source` sent and send it on, as much as the other end takes now. */
static void link_move(struct link *l, int source) {
    static char data[RELAY_CHUNK];
    ssize_t got = recv(source, data, sizeof data, 0);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (got <= 0) {
        link_close(l);
        return;
    }
    int to_kernel = source == l->server;
    append(to_kernel ? &l->to_kernel : &l->to_server, data, (size_t)got);
    link_flush(l, to_kernel ? l->kernel : l->server);
}

static void relay_accept(struct relay *r, int index) {
    int conn = accept4(r->listeners[index], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            /* The connection stays queued, so the listener stays readable: without a pause,
               poll would return at once, again and again, until a descriptor is free. */
            r->accept_after = now() + ACCEPT_PAUSE;
        return;
    }
    if (r->links_len == r->links_cap) {
        size_t cap = r->links_cap ? r->links_cap * 2 : 8;
        struct link *grown = realloc(r->links, cap * sizeof *grown);
        if (grown == NULL) {
            close(conn);
            return;
        }
        r->links = grown;
        r->links_cap = cap;
    }
    struct link *l = &r->links[r->links_len];
    memset(l, 0, sizeof *l);
    l->server = conn;
    l->kernel = -1;
    l->port = r->ports[index];
    l->give_up_at = now() + PATIENCE;
    link_dial(l);
    if (!l->closed) r->links_len++;
}

double relay_timeout(const struct relay *r) {
    double soonest = -1;
    for (size_t i = 0; i < r->links_len; i++)
        if (r->links[i].kernel < 0 && (soonest < 0 || r->links[i].retry_at < soonest))
            soonest = r->links[i].retry_at;
    if (r->accept_after > now() && (soonest < 0 || r->accept_after < soonest))
        soonest = r->accept_after;
    if (soonest < 0) return -1;
    double left = soonest - now();
    return left > 0 ? left : 0;
}

size_t relay_poll(struct relay *r, struct pollfd *fds, size_t room) {
    size_t n = 0;
    int taking = now() >= r->accept_after;
    for (int i = 0; i < r->count && n < room; i++)
        fds[n++] = (struct pollfd){.fd = taking ? r->listeners[i] : -1, .events = POLLIN};
    /* Two entries a link, in order (the server's end, then the kernel's): poll ignores those
       whose fd is negative. Links past what fits wait for the next turn. */
    for (size_t i = 0; i < r->links_len && n + 2 <= room; i++) {
        struct link *l = &r->links[i];
        short server = 0, kernel = 0;
        if (l->kernel >= 0) {
            if (l->connected) {
                if (l->to_kernel.len == 0) server |= POLLIN;
                if (l->to_server.len == 0) kernel |= POLLIN;
            }
            if (!l->connected || l->to_kernel.len) kernel |= POLLOUT;
            if (l->to_server.len) server |= POLLOUT;
        }
        fds[n++] = (struct pollfd){.fd = server ? l->server : -1, .events = server};
        fds[n++] = (struct pollfd){.fd = kernel ? l->kernel : -1, .events = kernel};
    }
    return n;
}

void relay_handle(struct relay *r, const struct pollfd *fds, size_t count) {
    for (int i = 0; i < r->count && (size_t)i < count; i++)
        if (fds[i].fd >= 0 && fds[i].revents) relay_accept(r, i);
    const struct pollfd *at = fds + r->count;
    size_t polled = count > (size_t)r->count ? (count - (size_t)r->count) / 2 : 0;
    double moment = now();
    for (size_t i = 0; i < r->links_len; i++) {
        struct link *l = &r->links[i];
        if (l->closed) continue;
        if (l->kernel < 0) {
            if (moment >= l->retry_at) link_dial(l);
            continue;
        }
        if (i >= polled) continue; /* accepted this turn, or past what fitted */
        short server = at[2 * i].revents, kernel = at[2 * i + 1].revents;
        if (!l->connected) {
            if (kernel) link_dialled(l);
            continue;
        }
        if (server & (POLLIN | POLLHUP | POLLERR)) link_move(l, l->server);
        if (!l->closed && kernel & (POLLIN | POLLHUP | POLLERR)) link_move(l, l->kernel);
        if (!l->closed && kernel & POLLOUT) link_flush(l, l->kernel);
        if (!l->closed && server & POLLOUT) link_flush(l, l->server);
    }
    size_t kept = 0;
    for (size_t i = 0; i < r->links_len; i++)
        if (!r->links[i].closed) r->links[kept++] = r->links[i];
    r->links_len = kept;
}

void relay_close(struct relay *r) {
    for (int i = 0; i < r->count; i++) close(r->listeners[i]);
    for (size_t i = 0; i < r->links_len; i++) link_close(&r->links[i]);
    r->links_len = 0;
}
