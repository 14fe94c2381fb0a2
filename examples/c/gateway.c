/*
 * gateway.c - a C program with its own poll() loop that embeds midge.
 *
 * It watches stdin and the broker's descriptor. Each line typed on stdin is
 * published (QoS 1) to "gateway/in"; messages on "gateway/out" are printed.
 * End of input shuts the broker down.
 *
 *   cargo build --release
 *   cc -Iinclude examples/c/gateway.c target/release/libmidge.a \
 *      -lpthread -ldl -lm -o gateway
 *   ./gateway 1883
 *
 * Then: mosquitto_sub -t gateway/in   and   mosquitto_pub -t gateway/out -m hi
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "midge.h"

static void on_message(void *user, const char *topic, const void *payload,
                       size_t len, int qos, int retain) {
    (void)user;
    printf("message %s qos=%d retain=%d: %.*s\n", topic, qos, retain,
           (int)len, (const char *)payload);
    fflush(stdout);
}

static void on_log(void *user, int level, const char *msg) {
    (void)user;
    fprintf(stderr, "midge[%d]: %s\n", level, msg);
}

static int fail(const char *what) {
    fprintf(stderr, "gateway: %s: %s\n", what, midge_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *port = argc > 1 ? argv[1] : "1883";
    midge_set_log_cb(on_log, NULL, 2);

    midge_config *cfg = midge_config_new();
    if (!cfg || midge_config_set(cfg, "port", port) != 0)
        return fail("config");
    midge_broker *b = midge_new(cfg);
    midge_config_free(cfg);
    if (!b)
        return fail("midge_new");
    if (midge_subscribe_cb(b, "gateway/out", 2, on_message, NULL) < 0)
        return fail("subscribe");
    printf("listening on port %d\n", midge_local_port(b));
    fflush(stdout);

    char line[4096];
    size_t used = 0;
    for (;;) {
        struct pollfd fds[2] = {
            {.fd = 0, .events = POLLIN},
            {.fd = midge_fd(b), .events = POLLIN},
        };
        if (poll(fds, 2, midge_next_timeout_ms(b)) < 0 && errno != EINTR)
            break;
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(0, line + used, sizeof line - 1 - used);
            if (n <= 0)
                break; /* end of input */
            used += (size_t)n;
            char *nl;
            while ((nl = memchr(line, '\n', used)) != NULL) {
                size_t len = (size_t)(nl - line);
                /* MIDGE_PAUSED: published, but a subscriber is behind;
                 * MIDGE_BUSY: not published (a real gateway would keep
                 * the line until the ready callback). */
                int rc = midge_publish(b, "gateway/in", line, len, 1, 0);
                if (rc < 0)
                    fprintf(stderr, "publish: %s\n", midge_last_error());
                used -= len + 1;
                memmove(line, nl + 1, used);
            }
            if (used == sizeof line - 1)
                used = 0; /* over-long line: drop it */
        }
        if (midge_poll(b, 0) != 0)
            return fail("poll");
    }
    midge_shutdown(b);
    midge_free(b);
    printf("bye\n");
    return 0;
}
