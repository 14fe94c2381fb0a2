/*
 * flood.c - a host with an epoll loop (edge- or level-triggered on
 * midge_fd) while more than 1,024 clients publish at once: every message
 * must arrive, without waiting for some unrelated timer. Usage: flood et|lt.
 */
#include <sys/epoll.h>
#include <sys/resource.h>

#include "harness.h"

#define CLIENTS 1100
/* How long the whole burst may take to arrive (the broker's connect
 * timeout, the only timer, is set far above it). */
#define BURST_MS 5000

static int received;

static void on_message(void *user, const char *topic, const void *payload,
                       size_t len, int qos, int retain) {
    (void)user, (void)topic, (void)payload, (void)len, (void)qos, (void)retain;
    received++;
}

/* One turn of the host's epoll loop, waiting at most max_ms. The broker's
 * descriptor is watched as registered; a deadline that passes is served
 * like readiness. */
static void turn_epoll(midge_broker *b, int ep, int max_ms) {
    struct epoll_event ev[8];
    int t = midge_next_timeout_ms(b);
    if (t < 0 || t > max_ms)
        t = max_ms;
    if (epoll_wait(ep, ev, 8, t) < 0)
        CHECK(errno == EINTR, "epoll_wait: %s", strerror(errno));
    CHECK(midge_poll(b, 0) == 0, "midge_poll");
}

int main(int argc, char **argv) {
    static int fds[CLIENTS];
    static unsigned char got[CLIENTS];
    int et = argc > 1 && strcmp(argv[1], "et") == 0;
    struct rlimit lim;
    struct epoll_event ev;
    midge_config *cfg = midge_config_new();
    midge_broker *b;
    int ep, port, i, acked = 0;
    long end;

    /* Both ends of every connection live in this process. */
    CHECK(getrlimit(RLIMIT_NOFILE, &lim) == 0, "getrlimit");
    if (lim.rlim_cur < 3 * CLIENTS) {
        lim.rlim_cur = lim.rlim_max;
        CHECK(setrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur >= 3 * CLIENTS,
              "need %d descriptors", 3 * CLIENTS);
    }
    CHECK(midge_config_set(cfg, "port", "0") == 0, "port");
    CHECK(midge_config_set(cfg, "sys_interval", "0") == 0, "sys_interval");
    CHECK(midge_config_set(cfg, "connect_timeout", "60") == 0, "connect_timeout");
    b = midge_new(cfg);
    midge_config_free(cfg);
    CHECK(b != NULL, "midge_new");
    port = midge_local_port(b);
    CHECK(midge_subscribe_cb(b, "flood/#", 0, on_message, NULL) > 0, "subscribe");

    ep = epoll_create1(0);
    CHECK(ep >= 0, "epoll_create1");
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | (et ? EPOLLET : 0);
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, midge_fd(b), &ev) == 0, "epoll_ctl");

    /* Connect everyone, 100 at a time so the listen backlog never fills,
     * and wait for every CONNACK. */
    for (i = 0; i < CLIENTS; i++) {
        struct client c;
        c.fd = fds[i] = tcp_connect(port);
        CHECK(c.fd >= 0, "connect %d: %s", i, strerror(errno));
        mqtt_connect(&c, "", NULL, NULL);
        if (i % 100 == 99)
            turn_epoll(b, ep, 10);
    }
    end = now_ms() + WAIT_MS;
    while (acked < CLIENTS && now_ms() < end) {
        turn_epoll(b, ep, 10);
        for (i = 0; i < CLIENTS; i++) {
            unsigned char ack[4];
            if (!got[i] && recv(fds[i], ack, 4, MSG_DONTWAIT) == 4) {
                CHECK(ack[0] == 0x20 && ack[3] == 0, "CONNACK %d", i);
                got[i] = 1;
                acked++;
            }
        }
    }
    CHECK(acked == CLIENTS, "%d of %d clients connected", acked, CLIENTS);

    /* Everyone publishes before the broker runs again: more sockets
     * become readable at once than one midge_poll takes. */
    for (i = 0; i < CLIENTS; i++) {
        struct client c;
        char topic[32];
        c.fd = fds[i];
        snprintf(topic, sizeof topic, "flood/%d", i);
        mqtt_publish(&c, topic, "x", 0, 0);
    }
    /* One midge_poll takes at most 1,024 events; the rest are pending
     * work, and the deadline must say so: an edge-triggered host may get
     * no new edge for them. */
    CHECK(midge_poll(b, 0) == 0, "midge_poll");
    CHECK(received < CLIENTS, "all %d messages in one midge_poll", received);
    CHECK(midge_next_timeout_ms(b) == 0,
          "%d of %d messages handled, yet midge_next_timeout_ms is %d, not 0",
          received, CLIENTS, midge_next_timeout_ms(b));
    end = now_ms() + BURST_MS;
    while (received < CLIENTS && now_ms() < end)
        turn_epoll(b, ep, (int)(end - now_ms()));
    CHECK(received == CLIENTS, "%s: %d of %d messages arrived within %d ms",
          et ? "edge-triggered" : "level-triggered", received, CLIENTS,
          BURST_MS);

    for (i = 0; i < CLIENTS; i++)
        close(fds[i]);
    close(ep);
    midge_free(b);
    printf("ok %d messages\n", received);
    return 0;
}
