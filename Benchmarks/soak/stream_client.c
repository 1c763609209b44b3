// Load client for Benchmarks/soak.sh and Benchmarks/callgrind.sh.
//
//   stream_client soak  HOST PORT N KEY|- TIMEOUT_S [WATCH_PID]
//   stream_client count HOST PORT M STREAM(0|1) KEY|-
//
// soak: a single-threaded epoll client. Opens N connections at once (non-blocking connects), sends
// on each one streamed chat completion request (POST /v1/chat/completions, model soak-gpt, with
// "Authorization: Bearer KEY" unless KEY is "-"), and reads the chunked event stream. For every event
// holding "content":"t<digits> " it records delay = now_us - digits (CLOCK_MONOTONIC; the paced
// upstream writes its send time there). A stream is complete once it has seen "data: [DONE]" and the
// chunked terminator. When every stream has received its first event it prints ALL_OPEN to stderr
// and, given WATCH_PID, reads that process's VmRSS (rss_open_kib); it also samples VmRSS every 50 ms
// (rss_peak_kib). Prints one line:
//   SOAK streams= complete= events= delay_p50_us= delay_p99_us= delay_max_us= errors= ...
// errors = streams that got a non-200 status, a reset or early close, or did not complete within
// TIMEOUT_S; the same split follows (err_status= err_reset= err_timeout=).
//
// count: M requests one after another on one keep-alive connection (reconnecting if the server
// closes it; with FRESH=1 in the environment, on a new connection each), each read to its end
// (streamed when STREAM=1). Prints COUNT requests= ok= errors=.
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

// ---- delays ----
static uint32_t *delays;
static size_t ndelays, cap_delays;

static void record_delay(int64_t d) {
    if (d < 0) d = 0;
    if (ndelays == cap_delays) {
        cap_delays = cap_delays ? cap_delays * 2 : 65536;
        delays = realloc(delays, cap_delays * sizeof *delays);
        if (!delays) die("realloc");
    }
    delays[ndelays++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t percentile(double p) {  // nearest rank, on sorted delays
    if (ndelays == 0) return 0;
    size_t rank = (size_t)(p / 100.0 * (double)ndelays + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > ndelays) rank = ndelays;
    return delays[rank - 1];
}

// ---- response parser (status, headers, chunked or Content-Length body, SSE events) ----
enum { P_HEAD, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_CRLF, P_TRAILER, P_LENGTH_BODY, P_DONE };

typedef struct {
    int state;
    int status;
    int chunked;
    size_t left;  // bytes left in the current chunk, or of a Content-Length body
    int content_length_known;
    char *ev;     // decoded body bytes not yet split into events
    size_t ev_len, ev_cap;
    int saw_done;
    long events;  // events with a timestamp
    int record;   // record delays (soak mode)
} parser;

static void parser_reset(parser *p) {
    p->state = P_HEAD;
    p->status = 0;
    p->chunked = 0;
    p->left = 0;
    p->content_length_known = 0;
    p->ev_len = 0;
    p->saw_done = 0;
    p->events = 0;
}

static void on_event(parser *p, const char *e, size_t len, uint64_t now) {
    if (memmem(e, len, "data: [DONE]", 12)) {
        p->saw_done = 1;
        return;
    }
    const char *q = memmem(e, len, "\"content\":", 10);
    if (!q) return;
    q += 10;
    const char *end = e + len;
    while (q < end && *q == ' ') q++;
    if (end - q < 3 || q[0] != '"' || q[1] != 't') return;
    q += 2;
    uint64_t t = 0;
    int digits = 0;
    while (q < end && *q >= '0' && *q <= '9') t = t * 10 + (uint64_t)(*q++ - '0'), digits++;
    if (!digits || q >= end || *q != ' ') return;
    p->events++;
    if (p->record) record_delay((int64_t)now - (int64_t)t);
}

// Splits the decoded body into events at blank lines ("\n\n" or "\r\n\r\n").
static void body_bytes(parser *p, const char *data, size_t len, uint64_t now) {
    reserve(&p->ev, &p->ev_cap, p->ev_len + len);
    memcpy(p->ev + p->ev_len, data, len);
    p->ev_len += len;
    size_t start = 0;
    for (size_t i = 0; i + 1 < p->ev_len; i++) {
        if (p->ev[i] != '\n') continue;
        size_t j = i + 1;
        if (j < p->ev_len && p->ev[j] == '\r') j++;
        if (j < p->ev_len && p->ev[j] == '\n') {
            on_event(p, p->ev + start, i - start, now);
            start = j + 1;
            i = j;
        }
    }
    if (start > 0) {
        memmove(p->ev, p->ev + start, p->ev_len - start);
        p->ev_len -= start;
    }
}

// Consumes what it can of buf[0..len); returns bytes consumed, or -1 on a malformed response.
static long parse(parser *p, const char *buf, size_t len, uint64_t now) {
    size_t off = 0;
    while (off < len && p->state != P_DONE) {
        const char *b = buf + off;
        size_t n = len - off;
        switch (p->state) {
        case P_HEAD: {
            const char *end = memmem(b, n, "\r\n\r\n", 4);
            if (!end) return (long)off;
            size_t head_len = (size_t)(end - b) + 4;
            if (n < 12 || memcmp(b, "HTTP/1.", 7) != 0) return -1;
            p->status = atoi(b + 9);
            const char *line = memchr(b, '\n', head_len);
            while (line && line + 1 < b + head_len) {
                const char *ls = line + 1;
                const char *le = memchr(ls, '\n', (size_t)(b + head_len - ls));
                if (!le) break;
                size_t l = (size_t)(le - ls);
                if (l >= 26 && strncasecmp(ls, "transfer-encoding:", 18) == 0 &&
                    memmem(ls, l, "chunked", 7))
                    p->chunked = 1;
                if (l > 15 && strncasecmp(ls, "content-length:", 15) == 0) {
                    p->left = (size_t)strtoull(ls + 15, NULL, 10);
                    p->content_length_known = 1;
                }
                line = le;
            }
            off += head_len;
            if (p->chunked) p->state = P_CHUNK_SIZE;
            else if (p->content_length_known) p->state = p->left ? P_LENGTH_BODY : P_DONE;
            else return -1;  // read-to-close bodies are not expected here
            break;
        }
        case P_CHUNK_SIZE: {
            const char *nl = memchr(b, '\n', n);
            if (!nl) return (long)off;
            char *endp;
            unsigned long long size = strtoull(b, &endp, 16);
            if (endp == b) return -1;
            off += (size_t)(nl - b) + 1;
            if (size == 0) p->state = P_TRAILER;
            else p->left = (size_t)size, p->state = P_CHUNK_DATA;
            break;
        }
        case P_CHUNK_DATA: {
            size_t take = n < p->left ? n : p->left;
            body_bytes(p, b, take, now);
            p->left -= take;
            off += take;
            if (p->left == 0) p->state = P_CHUNK_CRLF;
            break;
        }
        case P_CHUNK_CRLF: {
            if (n < 2) return (long)off;
            if (b[0] != '\r' || b[1] != '\n') return -1;
            off += 2;
            p->state = P_CHUNK_SIZE;
            break;
        }
        case P_TRAILER: {
            const char *nl = memchr(b, '\n', n);
            if (!nl) return (long)off;
            int empty = nl == b || (nl == b + 1 && b[0] == '\r');
            off += (size_t)(nl - b) + 1;
            if (empty) p->state = P_DONE;
            break;
        }
        case P_LENGTH_BODY: {
            size_t take = n < p->left ? n : p->left;
            body_bytes(p, b, take, now);
            p->left -= take;
            off += take;
            if (p->left == 0) p->state = P_DONE;
            break;
        }
        }
    }
    if (p->state == P_DONE && p->ev_len > 0) {  // a last event without its blank line
        on_event(p, p->ev, p->ev_len, now);
        p->ev_len = 0;
    }
    return (long)off;
}

static int request_text(char *out, size_t cap, const char *host, int port, const char *key, int stream) {
    char body[160];
    int blen = snprintf(body, sizeof body,
                        "{\"model\":\"soak-gpt\",\"stream\":%s,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}",
                        stream ? "true" : "false");
    char auth[600] = "";
    if (strcmp(key, "-") != 0) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", key);
    return snprintf(out, cap,
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n\r\n%s",
                    host, port, auth, blen, body);
}

static struct sockaddr_in target(const char *host, int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "bad host %s (an IPv4 address)\n", host);
        exit(2);
    }
    return a;
}

static long rss_kib(int pid) {
    if (pid <= 0) return 0;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    long kib = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) { kib = atol(line + 6); break; }
    fclose(f);
    return kib;
}

// ---- soak ----
enum { S_CONNECTING, S_READING, S_COMPLETE, S_FAILED };

typedef struct {
    int fd;
    int state;
    size_t sent;
    char *in;
    size_t in_len, in_cap;
    parser p;
    int got_first;
} stream;

static int soak(const char *host, int port, int n, const char *key, int timeout_s, int watch_pid) {
    char req[1024];
    int req_len = request_text(req, sizeof req, host, port, key, 1);
    struct sockaddr_in addr = target(host, port);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    stream *s = calloc((size_t)n, sizeof *s);
    if (!s) die("calloc");
    int one = 1;
    long err_status = 0, err_reset = 0, err_timeout = 0, complete = 0, open_count = 0, finished = 0;
    for (int i = 0; i < n; i++) {
        s[i].p.record = 1;
        parser_reset(&s[i].p);
        s[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s[i].fd < 0) die("socket (raise ulimit -n)");
        setsockopt(s[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(s[i].fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
            s[i].state = S_FAILED, err_reset++, finished++;
            close(s[i].fd);
            continue;
        }
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, s[i].fd, &ev) < 0) die("epoll_ctl");
    }
    uint64_t start = now_us(), deadline = start + (uint64_t)timeout_s * 1000000u, next_sample = start;
    long rss_open = 0, rss_peak = rss_kib(watch_pid);
    struct epoll_event evs[1024];
    char rbuf[65536];
    while (finished < n) {
        uint64_t now = now_us();
        if (now >= deadline) break;
        if (watch_pid && now >= next_sample) {
            long r = rss_kib(watch_pid);
            if (r > rss_peak) rss_peak = r;
            next_sample = now + 50000;
        }
        int k = epoll_wait(ep, evs, 1024, 50);
        if (k < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int j = 0; j < k; j++) {
            stream *c = &s[evs[j].data.u32];
            if (c->state == S_COMPLETE || c->state == S_FAILED) continue;
            int fail = 0;
            if (c->state == S_CONNECTING && (evs[j].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                if (soerr) fail = 1;
                while (!fail && c->sent < (size_t)req_len) {
                    ssize_t w = write(c->fd, req + c->sent, (size_t)req_len - c->sent);
                    if (w > 0) c->sent += (size_t)w;
                    else if (w < 0 && errno == EAGAIN) break;
                    else if (!(w < 0 && errno == EINTR)) fail = 1;
                }
                if (!fail && c->sent == (size_t)req_len) {
                    c->state = S_READING;
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[j].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (!fail && (evs[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                for (;;) {
                    ssize_t r = read(c->fd, rbuf, sizeof rbuf);
                    if (r < 0 && errno == EINTR) continue;
                    if (r < 0 && errno == EAGAIN) break;
                    if (r <= 0) { fail = 1; break; }
                    uint64_t t = now_us();
                    reserve(&c->in, &c->in_cap, c->in_len + (size_t)r);
                    memcpy(c->in + c->in_len, rbuf, (size_t)r);
                    c->in_len += (size_t)r;
                    long used = parse(&c->p, c->in, c->in_len, t);
                    if (used < 0) { fail = 1; break; }
                    memmove(c->in, c->in + used, c->in_len - (size_t)used);
                    c->in_len -= (size_t)used;
                    if (c->p.state != P_HEAD && c->p.status != 200) {
                        err_status++;
                        c->state = S_FAILED, finished++;
                        close(c->fd);
                        break;
                    }
                    if (!c->got_first && c->p.events > 0) {
                        c->got_first = 1;
                        if (++open_count == n) {
                            if (watch_pid) {
                                rss_open = rss_kib(watch_pid);
                                if (rss_open > rss_peak) rss_peak = rss_open;
                            }
                            fprintf(stderr, "ALL_OPEN\n");
                            fflush(stderr);
                        }
                    }
                    if (c->p.state == P_DONE) {
                        if (c->p.saw_done) complete++;
                        else err_reset++;  // ended without [DONE]
                        c->state = c->p.saw_done ? S_COMPLETE : S_FAILED;
                        finished++;
                        close(c->fd);
                        break;
                    }
                    if ((size_t)r < sizeof rbuf) break;
                }
            }
            if (fail && c->state != S_COMPLETE && c->state != S_FAILED) {
                err_reset++;
                c->state = S_FAILED, finished++;
                close(c->fd);
            }
        }
    }
    for (int i = 0; i < n; i++)
        if (s[i].state != S_COMPLETE && s[i].state != S_FAILED) {
            err_timeout++;
            close(s[i].fd);
        }
    long events = 0;
    for (int i = 0; i < n; i++) events += s[i].p.events;
    qsort(delays, ndelays, sizeof *delays, cmp_u32);
    printf("SOAK streams=%d complete=%ld events=%ld delay_p50_us=%u delay_p99_us=%u delay_max_us=%u errors=%ld "
           "err_status=%ld err_reset=%ld err_timeout=%ld rss_open_kib=%ld rss_peak_kib=%ld wall_ms=%llu\n",
           n, complete, events, percentile(50), percentile(99), ndelays ? delays[ndelays - 1] : 0,
           err_status + err_reset + err_timeout, err_status, err_reset, err_timeout, rss_open, rss_peak,
           (unsigned long long)((now_us() - start) / 1000));
    fflush(stdout);
    return complete == n ? 0 : 1;
}

// ---- count ----
static int connect_blocking(struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = 120};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)addr, sizeof *addr) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int count(const char *host, int port, long m, int stream_flag, const char *key) {
    char req[1024];
    int req_len = request_text(req, sizeof req, host, port, key, stream_flag);
    struct sockaddr_in addr = target(host, port);
    int fd = -1;
    long ok = 0, errors = 0;
    parser p = {0};
    char *in = NULL;
    size_t in_len = 0, in_cap = 0;
    char rbuf[65536];
    const char *fresh_env = getenv("FRESH");
    int fresh = fresh_env && strcmp(fresh_env, "1") == 0;  // a new connection for every request
    for (long i = 0; i < m; i++) {
        if (fd < 0 && (fd = connect_blocking(&addr)) < 0) {
            errors++;
            continue;
        }
        parser_reset(&p);
        in_len = 0;
        int fail = 0;
        size_t sent = 0;
        while (sent < (size_t)req_len) {
            ssize_t w = write(fd, req + sent, (size_t)req_len - sent);
            if (w > 0) sent += (size_t)w;
            else if (!(w < 0 && errno == EINTR)) { fail = 1; break; }
        }
        while (!fail && p.state != P_DONE) {
            ssize_t r = read(fd, rbuf, sizeof rbuf);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) { fail = 1; break; }
            reserve(&in, &in_cap, in_len + (size_t)r);
            memcpy(in + in_len, rbuf, (size_t)r);
            in_len += (size_t)r;
            long used = parse(&p, in, in_len, now_us());
            if (used < 0) { fail = 1; break; }
            memmove(in, in + used, in_len - (size_t)used);
            in_len -= (size_t)used;
        }
        if (!fail && p.status == 200 && (!stream_flag || p.saw_done)) ok++;
        else errors++;
        if (fail || fresh) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) close(fd);
    printf("COUNT requests=%ld ok=%ld errors=%ld\n", m, ok, errors);
    fflush(stdout);
    return errors == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 7 && strcmp(argv[1], "soak") == 0)
        return soak(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5], atoi(argv[6]), argc > 7 ? atoi(argv[7]) : 0);
    if (argc == 7 && strcmp(argv[1], "count") == 0)
        return count(argv[2], atoi(argv[3]), atol(argv[4]), atoi(argv[5]), argv[6]);
    fprintf(stderr,
            "usage: %s soak HOST PORT N KEY|- TIMEOUT_S [WATCH_PID]\n"
            "       %s count HOST PORT M STREAM(0|1) KEY|-\n",
            argv[0], argv[0]);
    return 2;
}
