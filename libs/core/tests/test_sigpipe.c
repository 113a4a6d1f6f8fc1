/* test_sigpipe.c -- mr_sigpipe_hold/release around a write to a socket whose peer is gone: the
 * write fails with EPIPE and the process lives, the thread's mask comes back as it was, and a
 * SIGPIPE that was pending before the hold is still pending after it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mindroom/sigpipe.h"

static bool pipe_blocked(void)
{
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    return sigismember(&now, SIGPIPE);
}

static bool pipe_pending(void)
{
    sigset_t pending;
    sigpending(&pending);
    return sigismember(&pending, SIGPIPE);
}

/* Writes to a socket whose peer has closed, inside a hold; the write must fail with EPIPE. */
static void write_to_closed_peer(void)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    mr_sigpipe_guard g;
    mr_sigpipe_hold(&g);
    errno = 0;
    assert_int_equal(write(sv[0], "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    mr_sigpipe_release(&g);
    close(sv[0]);
}

static void test_unblocked_thread(void **state)
{
    (void)state;
    assert_false(pipe_blocked());
    write_to_closed_peer();
    assert_false(pipe_blocked());
    assert_false(pipe_pending());
}

static void test_blocked_thread_keeps_its_pending_signal(void **state)
{
    (void)state;
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);

    /* Blocked, nothing pending: the SIGPIPE the write raises is consumed. */
    write_to_closed_peer();
    assert_true(pipe_blocked());
    assert_false(pipe_pending());

    /* Blocked with a SIGPIPE of someone else's pending: it is left for them. */
    assert_int_equal(pthread_kill(pthread_self(), SIGPIPE), 0);
    assert_true(pipe_pending());
    write_to_closed_peer();
    assert_true(pipe_blocked());
    assert_true(pipe_pending());

    struct timespec zero = {0, 0};
    assert_int_equal(sigtimedwait(&pipe_set, NULL, &zero), SIGPIPE);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unblocked_thread),
        cmocka_unit_test(test_blocked_thread_keeps_its_pending_signal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
