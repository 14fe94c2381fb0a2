/*
 * epoll_auth.c - a host with an edge-triggered epoll loop that decides who
 * may connect and what they may do, and logs who comes and goes.
 *
 * Clients must log in as "sensor" with the password given on the command
 * line, may publish only under "sensors/" and may not subscribe to
 * "admin/#". Messages under "sensors/" are printed with the client that
 * sent them. End of input (or a line "quit") shuts the broker down.
 *
 *   cargo build --release
 *   cc -Iinclude examples/c/epoll_auth.c target/release/libmidge.a \
 *      -lpthread -ldl -lm -o epoll_auth
 *   ./epoll_auth 1883 secret
 *
 * Then: mosquitto_pub -u sensor -P secret -t sensors/t -m 21
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "midge.h"

static const char *password;

static int on_auth(void *user, const midge_credentials *c) {
    (void)user;
    if (!c->username || strcmp(c->username, "sensor") != 0)
        return MIDGE_AUTH_NOT_AUTHORIZED;
    if (!c->password || c->password_len != strlen(password) ||
        memcmp(c->password, password, c->password_len) != 0)
        return MIDGE_AUTH_BAD_CREDENTIALS;
    return MIDGE_AUTH_ACCEPT;
}

static int on_acl(void *user, const char *client_id, const char *username,
                  int access, const char *topic) {
    (void)user, (void)client_id, (void)username;
    if (access == MIDGE_ACCESS_PUBLISH)
        return strncmp(topic, "sensors/", 8) == 0;
    return strncmp(topic, "admin/", 6) != 0 && strcmp(topic, "#") != 0;
}

static void on_event(void *user, const midge_event *e) {
    (void)user;
    if (e->type == MIDGE_EVENT_CONNECTED)
        printf("connected %s (%s) from %s\n", e->client_id,
               e->username ? e->username : "-", e->address);
    else
        printf("disconnected %s: %s\n", e->client_id, e->reason);
    fflush(stdout);
}

static void on_message(void *user, const midge_message *m) {
    (void)user;
    printf("message %s from %s: %.*s\n", m->topic,
           m->client_id ? m->client_id : "(host)", (int)m->len,
           (const char *)m->payload);
    fflush(stdout);
}

int main(int argc, char **argv) {
    midge_config *cfg = midge_config_new();
    midge_broker *b;
    struct epoll_event ev;
    int ep, running = 1;
    password = argc > 2 ? argv[2] : "secret";
    if (!cfg || midge_config_set(cfg, "port", argc > 1 ? argv[1] : "1883") != 0)
        return fprintf(stderr, "config: %s\n", midge_last_error()), 1;
    b = midge_new(cfg);
    midge_config_free(cfg);
    if (!b)
        return fprintf(stderr, "midge_new: %s\n", midge_last_error()), 1;
    midge_set_auth_cb(b, on_auth, NULL);
    midge_set_acl_cb(b, on_acl, NULL);
    midge_set_event_cb(b, on_event, NULL);
    midge_subscribe_ex(b, "sensors/#", 1, on_message, NULL);
    printf("listening on port %d\n", midge_local_port(b));
    fflush(stdout);

    /* Edge-triggered: after each wake-up, call midge_poll and honour
     * midge_next_timeout_ms (0 when more is ready than one call took). */
    ep = epoll_create1(0);
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLET;
    ev.data.fd = midge_fd(b);
    epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);
    ev.events = EPOLLIN;
    ev.data.fd = 0;
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    while (running) {
        struct epoll_event ready[16];
        int i, n = epoll_wait(ep, ready, 16, midge_next_timeout_ms(b));
        for (i = 0; i < n; i++) {
            char line[256];
            if (ready[i].data.fd != 0)
                continue;
            if (!fgets(line, sizeof line, stdin) || strcmp(line, "quit\n") == 0)
                running = 0;
        }
        if (midge_poll(b, 0) != 0)
            running = 0;
    }
    close(ep);
    midge_free(b);
    printf("bye\n");
    return 0;
}
