// Helpers shared by paced_upstream.c and stream_client.c.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline void die(const char *what) {
    perror(what);
    exit(1);
}

// Grows *buf (capacity *cap) to hold at least need bytes, doubling.
static inline void reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t n = *cap ? *cap : 1024;
    while (n < need) n *= 2;
    char *p = realloc(*buf, n);
    if (!p) die("realloc");
    *buf = p;
    *cap = n;
}
