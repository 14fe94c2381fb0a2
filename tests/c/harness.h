/*
 * harness.h - what the C test programs share: checks that exit with a
 * message, a host loop over poll(), and a minimal MQTT 3.1.1 client on a
 * blocking loopback socket, read without blocking while the broker runs.
 * Every wait is bounded.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "midge.h"

/* Not every program uses every helper. */
#define HELPER static __attribute__((unused))

/* The longest any single expectation may wait. */
#define WAIT_MS 5000

HELPER void die(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (midge_last_error: \"%s\")\n", midge_last_error());
    exit(1);
}
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond))                                                           \
            die(__FILE__, __LINE__, __VA_ARGS__);                              \
    } while (0)

HELPER long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* One turn of a level-triggered poll() host loop: wait for midge_fd or the
 * broker's deadline (at most max_ms), then midge_poll. */
HELPER int turn(midge_broker *b, int max_ms) {
    struct pollfd p;
    int t = midge_next_timeout_ms(b);
    p.fd = midge_fd(b);
    p.events = POLLIN;
    p.revents = 0;
    if (t < 0 || t > max_ms)
        t = max_ms;
    if (poll(&p, 1, t) < 0 && errno != EINTR)
        return -1;
    return midge_poll(b, 0);
}

/* Runs the loop until *flag is nonzero; 0 if it did not become so in time. */
HELPER int run_until(midge_broker *b, volatile int *flag, int ms) {
    long end = now_ms() + ms;
    while (!*flag && now_ms() < end)
        CHECK(turn(b, 10) >= 0, "midge_poll failed");
    return *flag;
}

/* A test client: a socket and what it has read but not yet taken. */
struct client {
    int fd;
    unsigned char buf[16384];
    size_t have;
};

HELPER void send_all(struct client *c, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        CHECK(n > 0, "send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* A TCP connection to 127.0.0.1:port; -1 with errno if refused. */
HELPER int tcp_connect(int port) {
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

HELPER size_t put_str(unsigned char *p, const char *s) {
    size_t n = strlen(s);
    p[0] = (unsigned char)(n >> 8);
    p[1] = (unsigned char)n;
    memcpy(p + 2, s, n);
    return n + 2;
}

/* Sends a packet: fixed header byte, remaining length, body. */
HELPER void send_packet(struct client *c, unsigned char type,
                        const unsigned char *body, size_t len) {
    unsigned char head[5];
    size_t n = 0, rest = len;
    head[n++] = type;
    do {
        unsigned char byte = (unsigned char)(rest % 128);
        rest /= 128;
        head[n++] = (unsigned char)(byte | (rest ? 0x80 : 0));
    } while (rest);
    send_all(c, head, n);
    send_all(c, body, len);
}

/* CONNECT (MQTT 3.1.1, clean session, keep-alive in seconds); user/pass
 * optional. */
HELPER void mqtt_connect_ka(struct client *c, const char *id, const char *user,
                            const char *pass, int keep_alive) {
    unsigned char b[512];
    size_t n = put_str(b, "MQTT");
    b[n++] = 4;
    b[n++] = (unsigned char)(0x02 | (user ? 0x80 : 0) | (pass ? 0x40 : 0));
    b[n++] = (unsigned char)(keep_alive >> 8);
    b[n++] = (unsigned char)keep_alive;
    n += put_str(b + n, id);
    if (user)
        n += put_str(b + n, user);
    if (pass)
        n += put_str(b + n, pass);
    send_packet(c, 0x10, b, n);
}

/* CONNECT without keep-alive. */
HELPER void mqtt_connect(struct client *c, const char *id, const char *user,
                         const char *pass) {
    mqtt_connect_ka(c, id, user, pass, 0);
}

HELPER void mqtt_subscribe(struct client *c, int pkid, const char *filter,
                           int qos) {
    unsigned char b[512];
    size_t n = 0;
    b[n++] = (unsigned char)(pkid >> 8);
    b[n++] = (unsigned char)pkid;
    n += put_str(b + n, filter);
    b[n++] = (unsigned char)qos;
    send_packet(c, 0x82, b, n);
}

HELPER void mqtt_publish(struct client *c, const char *topic, const char *text,
                         int qos, int pkid) {
    unsigned char b[1024];
    size_t n = put_str(b, topic);
    if (qos > 0) {
        b[n++] = (unsigned char)(pkid >> 8);
        b[n++] = (unsigned char)pkid;
    }
    memcpy(b + n, text, strlen(text));
    n += strlen(text);
    send_packet(c, (unsigned char)(0x30 | (qos << 1)), b, n);
}

HELPER void mqtt_puback(struct client *c, int pkid) {
    unsigned char b[2];
    b[0] = (unsigned char)(pkid >> 8);
    b[1] = (unsigned char)pkid;
    send_packet(c, 0x40, b, 2);
}

/* Takes one whole packet off c's buffer: its first byte, its body in
 * body/len (len up to cap). 0 if none is complete yet. */
HELPER int take_packet(struct client *c, unsigned char *body, size_t cap,
                       size_t *len) {
    size_t i = 1, rest = 0, mult = 1;
    int type;
    for (;;) {
        if (i >= c->have)
            return 0;
        rest += (c->buf[i] & 0x7f) * mult;
        mult *= 128;
        if (!(c->buf[i++] & 0x80))
            break;
    }
    if (c->have < i + rest)
        return 0;
    CHECK(rest <= cap, "packet of %lu bytes", (unsigned long)rest);
    type = c->buf[0];
    memcpy(body, c->buf + i, rest);
    *len = rest;
    memmove(c->buf, c->buf + i + rest, c->have - i - rest);
    c->have -= i + rest;
    return type;
}

/* The next packet from the broker (its first byte), running the broker
 * meanwhile (b may be NULL when another thread runs it); -1 on timeout,
 * 0 when the broker closed the connection. */
HELPER int read_packet(midge_broker *b, struct client *c, unsigned char *body,
                       size_t cap, size_t *len) {
    long end = now_ms() + WAIT_MS;
    for (;;) {
        int type = take_packet(c, body, cap, len);
        ssize_t n;
        if (type)
            return type;
        n = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have,
                 MSG_DONTWAIT);
        if (n == 0)
            return 0;
        if (n > 0) {
            c->have += (size_t)n;
            continue;
        }
        CHECK(errno == EAGAIN || errno == EWOULDBLOCK, "recv: %s",
              strerror(errno));
        if (now_ms() > end)
            return -1;
        if (b)
            CHECK(turn(b, 5) >= 0, "midge_poll failed");
        else
            usleep(1000);
    }
}

/* Connects a client and checks its CONNACK code. */
HELPER void client_open(midge_broker *b, struct client *c, int port,
                        const char *id, const char *user, const char *pass,
                        int code) {
    unsigned char body[64];
    size_t len;
    c->have = 0;
    c->fd = tcp_connect(port);
    CHECK(c->fd >= 0, "connect: %s", strerror(errno));
    mqtt_connect(c, id, user, pass);
    CHECK(read_packet(b, c, body, sizeof body, &len) == 0x20, "no CONNACK");
    CHECK(len == 2 && body[1] == code, "%s: CONNACK %d, expected %d", id,
          body[1], code);
}

/* Subscribes and returns the SUBACK's return code. */
HELPER int client_subscribe(midge_broker *b, struct client *c,
                            const char *filter, int qos) {
    unsigned char body[64];
    size_t len;
    mqtt_subscribe(c, 1, filter, qos);
    CHECK(read_packet(b, c, body, sizeof body, &len) == 0x90, "no SUBACK");
    return body[2];
}

#endif /* HARNESS_H */
