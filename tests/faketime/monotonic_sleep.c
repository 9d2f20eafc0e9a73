/* Preloaded before Debian's libfaketime (0.9.10) so that sleeping on the
 * monotonic clock still works when DONT_FAKE_MONOTONIC=1: that version hands
 * clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...) a faked deadline, and the
 * kernel answers EINVAL -- Python 3.11's time.sleep() raises OSError
 * (wolfcw/libfaketime#426). Monotonic sleeps go straight to the kernel; every
 * other clock is left to libfaketime. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int clock_nanosleep(clockid_t clock, int flags, const struct timespec *request, struct timespec *remain)
{
    static int (*next)(clockid_t, int, const struct timespec *, struct timespec *);

    if (clock == CLOCK_MONOTONIC || clock == CLOCK_BOOTTIME) {
        /* clock_nanosleep returns the error number itself, not -1 and errno */
        return syscall(SYS_clock_nanosleep, clock, flags, request, remain) == 0 ? 0 : errno;
    }
    if (next == NULL)
        next = (int (*)(clockid_t, int, const struct timespec *, struct timespec *))dlsym(RTLD_NEXT, "clock_nanosleep");
    return next(clock, flags, request, remain);
}
