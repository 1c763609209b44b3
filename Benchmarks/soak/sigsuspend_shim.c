// LD_PRELOAD shim for running Swift binaries under valgrind 3.19 (Debian 12's), used by
// Benchmarks/callgrind.sh.
//
// A Swift program with an async main ends its main thread in dispatch_main(), whose libdispatch
// thread then waits in sigsuspend() on a `static const sigset_t`, which lives in read-only memory.
// Valgrind 3.19's rt_sigsuspend wrapper sanitizes the mask in place (it writes to it), so it takes a
// SIGSEGV of its own ("VALGRIND INTERNAL ERROR: Valgrind received a signal 11") before the program
// does anything. This sigsuspend passes the kernel a writable copy of the mask instead; nothing else
// changes.
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, (size_t)(_NSIG / 8));
}
