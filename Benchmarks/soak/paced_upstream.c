// A cheap, paced OpenAI-style streaming upstream for Benchmarks/soak.sh and Benchmarks/callgrind.sh.
//
//   paced_upstream PORT EVENTS INTERVAL_MS [SPREAD] [GRAIN_US]
//
// Single-threaded epoll HTTP/1.1 server on 127.0.0.1:PORT, keep-alive. Every request (head up to
// \r\n\r\n plus a Content-Length or chunked body) is answered:
//   - if its body says "stream":true: 200, text/event-stream, chunked; then every INTERVAL_MS one chunk
//     holding one chat.completion.chunk event whose delta content is "t<SEND_TIME_US> ", SEND_TIME_US
//     being CLOCK_MONOTONIC in microseconds when the event is formatted right before its write (so a
//     client on this machine measures each event's delay end to end); after EVENTS such events, a
//     finish_reason "stop" chunk, a usage chunk, "data: [DONE]" and the terminating 0-size chunk.
//   - otherwise: 200 with a chat.completion JSON body (Content-Length), for non-streamed benchmarks.
// INTERVAL_MS = 0 sends a whole stream at once, in one write.
//
// SPREAD (default 1): a stream's first event comes a phase after its request, the phases following
// the golden-ratio sequence over (0, INTERVAL_MS], and the next ones every INTERVAL_MS after it; so
// however fast or slow a proxy passes on a burst of requests, the events of many streams reach it
// evenly spread over each interval (1,000 streams at 100 ms: 10 events a millisecond). With SPREAD=0
// the first event comes INTERVAL_MS after the request, and streams whose requests arrive together
// send their events in bursts that are as tight as the proxy was fast to pass the requests on.
//
// Pacing: all streams share one interval, so the schedule is a list sorted by due time where a
// rescheduled stream almost always goes to the tail (insertion scans from the tail; only a new
// stream's first event lands inside), and one timerfd armed at the head's due time. A wake-up serves every stream due within GRAIN_US (default 200) of
// now, so 1,000 streams at 100 ms (10,000 events/s) cost a few percent of a core. If a write would
// block, the rest waits in the connection's buffer (EPOLLOUT) and later events queue behind it.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

typedef struct conn {
    int fd;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_off, out_len, out_cap;
    int epollout;     // EPOLLOUT registered
    int streaming;    // a paced response is in progress
    int want_close;   // the request said Connection: close
    int events_sent;
    uint64_t due_us;
    struct conn *prev, *next;  // in the schedule while streaming with INTERVAL_MS > 0
    int scheduled;
    int closed;
    struct conn *next_zombie;
} conn;

static int events_per_stream;
static uint64_t interval_us;
static uint64_t grain_us = 200;
static int spread = 1;
static double phase;  // golden-ratio sequence in [0, 1)
static int epfd, tfd;
static conn *sched_head, *sched_tail;
static uint64_t armed_due;
static unsigned long long served_streams, served_plain;
static conn *zombies;  // closed during this loop iteration, freed after it

static void out_append(conn *c, const char *data, size_t len) {
    if (c->out_off > 0 && c->out_off == c->out_len) c->out_off = c->out_len = 0;
    reserve(&c->out, &c->out_cap, c->out_len + len);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

// Appends one chunk holding `payload`.
static void out_chunk(conn *c, const char *payload, size_t len) {
    char size[32];
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    out_append(c, size, (size_t)n);
    out_append(c, payload, len);
    out_append(c, "\r\n", 2);
}

static void sched_remove(conn *c) {
    if (!c->scheduled) return;
    if (c->prev) c->prev->next = c->next; else sched_head = c->next;
    if (c->next) c->next->prev = c->prev; else sched_tail = c->prev;
    c->prev = c->next = NULL;
    c->scheduled = 0;
}

static void sched_insert(conn *c) {
    conn *after = sched_tail;
    while (after && after->due_us > c->due_us) after = after->prev;
    c->prev = after;
    c->next = after ? after->next : sched_head;
    if (c->next) c->next->prev = c; else sched_tail = c;
    if (after) after->next = c; else sched_head = c;
    c->scheduled = 1;
}

static void arm_timer(void) {
    uint64_t due = sched_head ? sched_head->due_us : 0;
    if (due == armed_due) return;
    struct itimerspec its = {0};
    if (due) {
        its.it_value.tv_sec = (time_t)(due / 1000000u);
        its.it_value.tv_nsec = (long)(due % 1000000u) * 1000;
    }
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) die("timerfd_settime");
    armed_due = due;
}

static void close_conn(conn *c) {
    if (c->closed) return;
    sched_remove(c);
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->closed = 1;
    c->next_zombie = zombies;
    zombies = c;
}

static void free_zombies(void) {
    while (zombies) {
        conn *c = zombies;
        zombies = c->next_zombie;
        free(c->in);
        free(c->out);
        free(c);
    }
}

static void set_epollout(conn *c, int on) {
    if (c->epollout == on) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl mod");
    c->epollout = on;
}

// Writes what is buffered; returns -1 if the connection failed (and was closed).
static int flush_out(conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            set_epollout(c, 1);
            return 0;
        } else {
            close_conn(c);
            return -1;
        }
    }
    c->out_off = c->out_len = 0;
    set_epollout(c, 0);
    if (c->want_close && !c->streaming) {
        shutdown(c->fd, SHUT_WR);
        close_conn(c);
        return -1;
    }
    return 0;
}

static void append_event(conn *c) {
    char ev[320];
    int n = snprintf(ev, sizeof ev,
                     "data: {\"id\":\"chatcmpl-soak\",\"object\":\"chat.completion.chunk\",\"created\":0,"
                     "\"model\":\"soak\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%llu \"},"
                     "\"finish_reason\":null}]}\n\n",
                     (unsigned long long)now_us());
    out_chunk(c, ev, (size_t)n);
}

static void append_tail(conn *c) {
    char ev[320];
    int n = snprintf(ev, sizeof ev,
                     "data: {\"id\":\"chatcmpl-soak\",\"object\":\"chat.completion.chunk\",\"created\":0,"
                     "\"model\":\"soak\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    out_chunk(c, ev, (size_t)n);
    n = snprintf(ev, sizeof ev,
                 "data: {\"id\":\"chatcmpl-soak\",\"object\":\"chat.completion.chunk\",\"created\":0,"
                 "\"model\":\"soak\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":%d,"
                 "\"total_tokens\":%d}}\n\n",
                 events_per_stream * 2, 20 + events_per_stream * 2);
    out_chunk(c, ev, (size_t)n);
    out_chunk(c, "data: [DONE]\n\n", 14);
    out_append(c, "0\r\n\r\n", 5);
}

// "stream" : true anywhere in the body (the gateway keeps the client's bytes, so this is enough).
static int body_streams(const char *body, size_t len) {
    const char *p = body, *end = body + len;
    while ((p = memmem(p, (size_t)(end - p), "\"stream\"", 8)) != NULL) {
        p += 8;
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q++;
        if (q < end && *q == ':') {
            q++;
            while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q++;
            if (end - q >= 4 && memcmp(q, "true", 4) == 0) return 1;
        }
    }
    return 0;
}

static int header_is(const char *line, size_t len, const char *name) {
    size_t n = strlen(name);
    return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

static const char *header_value(const char *line, size_t len, size_t name_len, size_t *vlen) {
    const char *v = line + name_len + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    *vlen = (size_t)(end - v);
    return v;
}

static void start_response(conn *c, int stream) {
    if (!stream) {
        char body[4096];
        size_t blen = 0;
        blen += (size_t)snprintf(body, sizeof body,
                                 "{\"id\":\"chatcmpl-soak\",\"object\":\"chat.completion\",\"created\":0,"
                                 "\"model\":\"soak\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                                 "\"content\":\"");
        uint64_t t = now_us();
        for (int i = 0; i < events_per_stream && blen < sizeof body - 200; i++)
            blen += (size_t)snprintf(body + blen, sizeof body - blen, "t%llu ", (unsigned long long)t);
        blen += (size_t)snprintf(body + blen, sizeof body - blen,
                                 "\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":20,"
                                 "\"completion_tokens\":%d,\"total_tokens\":%d}}",
                                 events_per_stream * 2, 20 + events_per_stream * 2);
        char head[256];
        int hn = snprintf(head, sizeof head,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
                          blen, c->want_close ? "Connection: close\r\n" : "");
        out_append(c, head, (size_t)hn);
        out_append(c, body, blen);
        served_plain++;
        return;
    }
    static const char head[] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
        "Cache-Control: no-cache\r\n\r\n";
    out_append(c, head, sizeof head - 1);
    served_streams++;
    if (interval_us == 0) {
        for (int i = 0; i < events_per_stream; i++) append_event(c);
        append_tail(c);
        return;
    }
    c->streaming = 1;
    c->events_sent = 0;
    c->due_us = now_us() + interval_us;
    if (spread) {
        phase += 0.6180339887498949;
        if (phase >= 1) phase -= 1;
        c->due_us = now_us() + 1 + (uint64_t)(phase * (double)(interval_us - 1));
    }
    sched_insert(c);
}

// Parses and answers buffered requests while no paced response is in progress. Returns -1 if the
// connection was closed.
static int handle_requests(conn *c) {
    while (!c->streaming && c->in_len > 0) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end) {
            if (c->in_len > (64u << 10)) { close_conn(c); return -1; }
            return 0;
        }
        size_t head_len = (size_t)(end - c->in) + 4, total = 0;
        long content_length = 0;
        int chunked = 0;
        char *line = memchr(c->in, '\n', head_len);  // skip the request line
        while (line && line + 1 < c->in + head_len) {
            char *ls = line + 1;
            char *le = memchr(ls, '\n', (size_t)(c->in + head_len - ls));
            if (!le) break;
            size_t len = (size_t)(le - ls);
            if (len > 0 && ls[len - 1] == '\r') len--;
            size_t vlen;
            if (header_is(ls, len, "content-length")) {
                content_length = strtol(header_value(ls, len, 14, &vlen), NULL, 10);
            } else if (header_is(ls, len, "transfer-encoding")) {
                const char *v = header_value(ls, len, 17, &vlen);
                chunked = vlen >= 7 && strncasecmp(v, "chunked", 7) == 0;
            } else if (header_is(ls, len, "connection")) {
                const char *v = header_value(ls, len, 10, &vlen);
                if (vlen >= 5 && strncasecmp(v, "close", 5) == 0) c->want_close = 1;
            }
            line = le;
        }
        if (chunked) {  // crude: the body ends at the first 0-size chunk
            char *z = memmem(c->in + head_len - 2, c->in_len - (head_len - 2), "\r\n0\r\n\r\n", 7);
            if (!z) return 0;
            total = (size_t)(z - c->in) + 7;
        } else {
            if (content_length < 0 || content_length > (8L << 20)) { close_conn(c); return -1; }
            total = head_len + (size_t)content_length;
            if (c->in_len < total) return 0;
        }
        int stream = body_streams(c->in + head_len, total - head_len);
        memmove(c->in, c->in + total, c->in_len - total);
        c->in_len -= total;
        start_response(c, stream);
        if (flush_out(c) < 0) return -1;
    }
    return 0;
}

static void on_readable(conn *c) {
    for (;;) {
        reserve(&c->in, &c->in_cap, c->in_len + 16384);
        size_t room = c->in_cap - c->in_len;
        ssize_t n = read(c->fd, c->in + c->in_len, room);
        if (n > 0) {
            c->in_len += (size_t)n;
            if ((size_t)n < room) break;  // short read: drained
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            break;
        } else {
            close_conn(c);  // EOF or error
            return;
        }
    }
    handle_requests(c);
}

static void on_timer(void) {
    uint64_t expirations;
    if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) die("read timerfd");
    armed_due = 0;  // fired
    uint64_t now = now_us();
    while (sched_head && sched_head->due_us <= now + grain_us) {
        conn *c = sched_head;
        sched_remove(c);
        append_event(c);
        c->events_sent++;
        if (c->events_sent >= events_per_stream) {
            append_tail(c);
            c->streaming = 0;
            if (flush_out(c) < 0) continue;
            handle_requests(c);  // a request that arrived meanwhile
        } else {
            c->due_us += interval_us;
            if (c->due_us < now) c->due_us = now;  // fell behind: no burst to catch up
            sched_insert(c);
            flush_out(c);
        }
        now = now_us();
    }
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s PORT EVENTS INTERVAL_MS [SPREAD] [GRAIN_US]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    events_per_stream = atoi(argv[2]);
    interval_us = (uint64_t)atoll(argv[3]) * 1000u;
    if (argc > 4) spread = atoi(argv[4]);
    if (argc > 5) grain_us = (uint64_t)atoll(argv[5]);
    if (port <= 0 || events_per_stream <= 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(lfd, 4096) < 0) die("listen");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (epfd < 0 || tfd < 0) die("epoll/timerfd");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lfd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.ptr = &tfd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);

    struct epoll_event events[512];
    while (!stop) {
        arm_timer();
        int n = epoll_wait(epfd, events, 512, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &lfd) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *c = calloc(1, sizeof *c);
                    if (!c) die("calloc");
                    c->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev) < 0) die("epoll_ctl add");
                }
            } else if (p == &tfd) {
                on_timer();
            } else {
                conn *c = p;
                if (c->closed) continue;
                uint32_t e = events[i].events;
                if (e & EPOLLOUT) {
                    if (flush_out(c) < 0) continue;
                    if (handle_requests(c) < 0) continue;
                }
                if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
            }
        }
        free_zombies();
    }
    fprintf(stderr, "paced_upstream: %llu streams, %llu plain responses\n", served_streams, served_plain);
    return 0;
}
