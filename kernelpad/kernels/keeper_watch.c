/* The keeper's watch, in C: what a kernel's keeper does for the kernel's whole life.

   The keeper (kernelpad/kernels/keeper.py, which says what it keeps and why) starts in Python:
   it listens on the kernel's lease, sets up the relay of a TCP kernel and starts the kernel.
   Then, where `python -m kernelpad.kernels.install` could build this program, it hands over to
   it with exec: the same process (the kernel's parent, the pid jupyter_client knows), the same
   descriptors, and this loop in place of Python's, which held ~10 MiB of RSS (4-5 of PSS) per
   kernel for as long as the kernel lived; this, built static, holds 0.75 (less once several
   keepers share its pages). When the kernel has ended, or is stopped, it execs the keeper's
   Python again to clean up (cgroups, the kernel's folder, what is left in its process group),
   and that exits with the kernel's status.

   It is keeper.py's Keeper.watch, step for step, and its relay (keeper_relay.c) relay.py's
   Relay (the same order of handling, the same limits): change one, change the other. The
   tests run both.

       keeper-watch --lease FD --output FD --child PID --wait S [--relay FD:PORT]...
                    -- CLEAN_UP_COMMAND ...

   The signals it acts on (SIGCHLD, SIGINT, SIGHUP, SIGTERM) come blocked from the keeper, so
   none is lost between the exec and the signalfd that reads them here. */

#include "keeper_watch.h"

#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#define CHUNK 4096          /* at most this per write to the server's pipe (see keeper.py) */
#define TAIL 65536          /* of a kernel's last words, what is passed on at most */
#define KEEP_MAX (7 * 24 * 3600.0)

struct watch {
    int listener, holder, output, sink, reading, stopping, signals;
    pid_t child;
    double keep, alone_since, grace;
    struct buffer pending, line;
    struct relay relay;
};

static void accept_holder(struct watch *w) {
    int conn = accept4(w->listener, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) return;
    struct ucred creds;
    socklen_t len = sizeof creds;
    if (w->holder >= 0 || getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &creds, &len) != 0 ||
        creds.uid != geteuid()) {
        close(conn); /* one server at a time holds a kernel; nobody else at all */
        return;
    }
    if (send(conn, "ok\n", 3, MSG_NOSIGNAL) != 3) {
        close(conn); /* gone already (a probe: is a keeper there?) */
        return;
    }
    fcntl(conn, F_SETFL, fcntl(conn, F_GETFL) | O_NONBLOCK);
    w->holder = conn;
}

static void read_holder(struct watch *w) {
    char data[1024];
    ssize_t got = recv(w->holder, data, sizeof data, 0);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (got <= 0) {
        close(w->holder);
        w->holder = -1;
        w->alone_since = now();
        w->grace = w->keep;
        release(&w->line);
        return;
    }
    append(&w->line, data, (size_t)got);
    char *end;
    while ((end = memchr(w->line.data, '\n', w->line.len)) != NULL) {
        *end = '\0';
        if (strncmp(w->line.data, "keep ", 5) == 0) {
            char *rest;
            double value = strtod(w->line.data + 5, &rest);
            if (rest != w->line.data + 5 && value == value) /* a number, not NaN */
                w->keep = value < 0 ? 0 : value > KEEP_MAX ? KEEP_MAX : value;
        }
        consume(&w->line, (size_t)(end - w->line.data) + 1);
    }
    if (w->line.len > 1024) release(&w->line); /* no line is that long */
}

/* Move what the kernel wrote on; 0 once it has closed its end. */
static int carry(struct watch *w) {
    static char data[65536];
    ssize_t got = read(w->output, data, sizeof data);
    if (got < 0) return errno == EAGAIN || errno == EINTR;
    if (got == 0) return 0;
    if (w->sink >= 0) append(&w->pending, data, (size_t)got);
    return 1;
}

static void flush(struct watch *w) {
    size_t count = w->pending.len < CHUNK ? w->pending.len : CHUNK;
    ssize_t written = write(w->sink, w->pending.data, count);
    if (written < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        w->sink = -1; /* nobody reads it any more */
        release(&w->pending);
        return;
    }
    consume(&w->pending, (size_t)written);
}

/* What a kernel that ended wrote last (why it ended, often), passed on whole. */
static void last_words(struct watch *w) {
    static char data[65536];
    fcntl(w->output, F_SETFL, fcntl(w->output, F_GETFL) | O_NONBLOCK);
    ssize_t got;
    while ((got = read(w->output, data, sizeof data)) > 0) {
        append(&w->pending, data, (size_t)got);
        if (w->pending.len > TAIL) consume(&w->pending, w->pending.len - TAIL);
    }
    while (w->pending.len && w->sink >= 0) {
        ssize_t written = write(w->sink, w->pending.data, w->pending.len);
        if (written < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { /* the server's end is non-blocking: wait for room */
                struct pollfd room = {.fd = w->sink, .events = POLLOUT};
                if (poll(&room, 1, 1000) > 0) continue;
            }
            return;
        }
        consume(&w->pending, (size_t)written);
    }
}

static int expired(const struct watch *w) {
    return w->holder < 0 && now() - w->alone_since >= w->grace;
}

static int status_of(int code) { /* os.waitstatus_to_exitcode */
    return WIFSIGNALED(code) ? -WTERMSIG(code) : WEXITSTATUS(code);
}

/* Whether the kernel has ended (then its status, and its last words passed on). */
static int reaped(struct watch *w, int *status) {
    int code;
    if (waitpid(w->child, &code, WNOHANG) != w->child) return 0;
    *status = status_of(code);
    last_words(w);
    return 1;
}

/* Keep the kernel until it ends, or is stopped, or nobody takes it back in time; its exit
   status (0 if the watch stopped it). */
static int run(struct watch *w) {
    struct pollfd fds[16 + 2 * 1024];
    enum { MAX_FDS = sizeof fds / sizeof fds[0] };
    int status = 0;
    /* Looked at first too: a kernel that ended before the exec had its SIGCHLD taken by the
       keeper's Python, and its output pipe may stay open in what it left running. */
    int ended = reaped(w, &status);
    while (!ended && !w->stopping && !expired(w)) {
        nfds_t n = 0;
        int at_holder = -1, at_output = -1, at_sink = -1;
        fds[n++] = (struct pollfd){.fd = w->listener, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = w->signals, .events = POLLIN};
        if (w->holder >= 0) {
            at_holder = (int)n;
            fds[n++] = (struct pollfd){.fd = w->holder, .events = POLLIN};
        }
        if (w->reading && w->pending.len == 0) {
            at_output = (int)n;
            fds[n++] = (struct pollfd){.fd = w->output, .events = POLLIN};
        }
        if (w->pending.len && w->sink >= 0) {
            at_sink = (int)n;
            fds[n++] = (struct pollfd){.fd = w->sink, .events = POLLOUT};
        }
        double timeout = -1;
        if (w->holder < 0) {
            timeout = w->grace - (now() - w->alone_since);
            if (timeout < 0) timeout = 0;
        }
        struct relay *r = &w->relay;
        nfds_t at_relay = n;
        if (r->count) {
            n += relay_poll(r, &fds[n], MAX_FDS - n);
            double retry = relay_timeout(r);
            if (retry >= 0 && (timeout < 0 || retry < timeout)) timeout = retry;
        }
        if (timeout > 3600) timeout = 3600; /* poll's int of ms; the loop looks again */
        int ms = timeout < 0 ? -1 : (int)(timeout * 1000.0 + 0.999);
        if (poll(fds, n, ms) < 0 && errno != EINTR) {
            perror("keeper-watch: poll");
            break;
        }
        if (fds[1].revents) {
            struct signalfd_siginfo info;
            while (read(w->signals, &info, sizeof info) == sizeof info)
                /* SIGINT, SIGHUP: woken, nothing more (an interrupt sent to the process group
                   is the kernel's). SIGCHLD: looked at below. */
                if (info.ssi_signo == SIGTERM) w->stopping = 1;
        }
        if ((ended = reaped(w, &status))) break;
        /* The holder's end first: a server that died as the next one connects must not keep
           the next one out. */
        if (at_holder >= 0 && fds[at_holder].revents) read_holder(w);
        if (fds[0].revents) accept_holder(w);
        if (at_output >= 0 && fds[at_output].revents) w->reading = carry(w);
        if (at_sink >= 0 && fds[at_sink].revents && w->sink >= 0) flush(w);
        if (r->count) relay_handle(r, &fds[at_relay], n - at_relay);
    }
    close(w->listener);
    relay_close(&w->relay);
    if (!ended) { /* stopped, or not taken back */
        kill(w->child, SIGKILL);
        while (waitpid(w->child, NULL, 0) < 0 && errno == EINTR) {}
    }
    return status;
}

static int number(const char *text, long low, long high, long *out) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < low || value > high) return 0;
    *out = value;
    return 1;
}

static const char USAGE[] =
    "usage: keeper-watch --lease FD --output FD --child PID --wait S [--relay FD:PORT]..."
    " -- CLEAN_UP_COMMAND ...\n";

int main(int argc, char **argv) {
    struct watch w = {.listener = -1, .holder = -1, .output = -1, .sink = 1, .reading = 1};
    double wait = -1;
    int i = 1;
    for (; i + 1 < argc && strcmp(argv[i], "--") != 0; i += 2) {
        const char *name = argv[i], *value = argv[i + 1];
        long n, port;
        char *colon;
        if (strcmp(name, "--lease") == 0 && number(value, 0, 1 << 20, &n)) {
            w.listener = (int)n;
        } else if (strcmp(name, "--output") == 0 && number(value, 0, 1 << 20, &n)) {
            w.output = (int)n;
        } else if (strcmp(name, "--child") == 0 && number(value, 1, 1L << 30, &n)) {
            w.child = (pid_t)n;
        } else if (strcmp(name, "--wait") == 0) {
            char *end;
            wait = strtod(value, &end);
            if (end == value || *end || wait < 0) wait = -1;
        } else if (strcmp(name, "--relay") == 0 && (colon = strchr(value, ':')) != NULL &&
                   w.relay.count < CHANNELS) {
            *colon = '\0';
            if (!number(value, 0, 1 << 20, &n) || !number(colon + 1, 1, 65535, &port)) break;
            w.relay.listeners[w.relay.count] = (int)n;
            w.relay.ports[w.relay.count++] = (int)port;
        } else {
            break;
        }
    }
    if (i >= argc || strcmp(argv[i], "--") != 0 || i + 1 == argc || w.listener < 0 ||
        w.output < 0 || w.child <= 0 || wait < 0) {
        fputs(USAGE, stderr);
        return 64;
    }
    char **clean_up = &argv[i + 1];
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL); /* already so, from the keeper: said again */
    w.signals = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    int status = 0;
    if (w.signals < 0) {
        perror("keeper-watch: signalfd");
        kill(w.child, SIGKILL);
        waitpid(w.child, NULL, 0);
    } else {
        fcntl(w.listener, F_SETFL, fcntl(w.listener, F_GETFL) | O_NONBLOCK);
        w.alone_since = now();
        w.grace = wait; /* until the first holder: the server's start time-out */
        status = run(&w);
        close(w.signals);
    }
    /* The holder's connection stays open through the clean-up, as it would in Python's
       watch: its server reads the end of it as the keeper's, once the kernel's files and
       cgroups are gone. */
    if (w.holder >= 0) fcntl(w.holder, F_SETFD, 0);
    /* The clean-up, in the keeper's Python, with the kernel's status to exit with. The
       signals stay blocked: one unblocked here would end this process before it cleans up
       (SIGTERM's default), and the clean-up has nothing to wait for. */
    int count = argc - i - 1;
    char **command = calloc((size_t)count + 3, sizeof *command);
    char status_text[16];
    snprintf(status_text, sizeof status_text, "%d", status);
    if (command != NULL) {
        memcpy(command, clean_up, (size_t)count * sizeof *command);
        command[count] = "--status";
        command[count + 1] = status_text;
        execv(command[0], command);
    }
    perror("keeper-watch: the clean-up could not start");
    return status & 0xff;
}
