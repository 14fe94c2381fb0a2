/*
 * features.c - the C API from a host's side, check by check: options from
 * a config file, the ports of all listeners, log callbacks (process and
 * per broker, two brokers in one process), authentication, authorization and event callbacks, the
 * publisher's client id, statistics, reloading the ACL, flow control of
 * the host's publishes, disconnecting a client, a host woken by a timerfd
 * armed from midge_next_timeout_ms, and the thread-safe handle
 * (another thread publishes and shuts the broker down). Usage: features
 * DIR (an empty directory for its files). Prints "ok NAME" per check.
 */
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include "harness.h"

static char dir[512];

static void path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", dir, name);
}

static void write_file(const char *name, const char *text) {
    char p[600];
    FILE *f;
    path(p, sizeof p, name);
    f = fopen(p, "w");
    CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0, "writing %s", p);
}

/* ------------------------------------------------------------- logging */
static int process_lines, broker_lines, listening_logged, alice_logged;

static void process_log(void *user, int level, const char *msg) {
    (void)user, (void)level;
    process_lines++;
    if (strstr(msg, "listening on"))
        listening_logged = 1;
}

static int zed_logged_first, zed_logged_second;

static void broker_log(void *user, int level, const char *msg) {
    CHECK(user == (void *)&broker_lines, "log user pointer");
    CHECK(level >= 1 && level <= 3, "level %d", level);
    broker_lines++;
    if (strstr(msg, "alice"))
        alice_logged = 1;
    if (strstr(msg, "zed"))
        zed_logged_first = 1;
}

static void second_broker_log(void *user, int level, const char *msg) {
    (void)user, (void)level;
    if (strstr(msg, "zed"))
        zed_logged_second = 1;
}

/* ----------------------------------------------------- auth, acl, events */
static char cred_id[64], cred_user[64], cred_pass[64], cred_addr[64];
static int acl_calls;
static char events[16][160];
static int n_events;

static int on_auth(void *user, const midge_credentials *c) {
    (void)user;
    snprintf(cred_id, sizeof cred_id, "%s", c->client_id);
    snprintf(cred_user, sizeof cred_user, "%s", c->username ? c->username : "(null)");
    snprintf(cred_pass, sizeof cred_pass, "%.*s", (int)c->password_len,
             c->password ? (const char *)c->password : "");
    snprintf(cred_addr, sizeof cred_addr, "%s", c->address);
    if (c->username && strcmp(c->username, "bad") == 0)
        return MIDGE_AUTH_BAD_CREDENTIALS;
    return MIDGE_AUTH_ACCEPT;
}

static int on_acl(void *user, const char *id, const char *name, int access,
                  const char *topic) {
    (void)user, (void)id, (void)name;
    acl_calls++;
    return !(access == MIDGE_ACCESS_SUBSCRIBE && strncmp(topic, "hostdeny/", 9) == 0);
}

static void on_event(void *user, const midge_event *e) {
    (void)user;
    CHECK(n_events < 16, "too many events");
    snprintf(events[n_events++], sizeof events[0], "%s %s %s %s %s",
             e->type == MIDGE_EVENT_CONNECTED ? "connected" : "disconnected",
             e->client_id, e->username ? e->username : "(null)", e->address,
             e->reason ? e->reason : "-");
}

/* ------------------------------------------------------------ messages */
static char last_topic[64], last_publisher[64];
static int messages;

static void on_message(void *user, const midge_message *m) {
    (void)user;
    CHECK(m->payload != NULL, "payload NULL");
    snprintf(last_topic, sizeof last_topic, "%s", m->topic);
    snprintf(last_publisher, sizeof last_publisher, "%s",
             m->client_id ? m->client_id : "(null)");
    messages++;
}

static volatile int ready;
static void on_ready(void *user) {
    (void)user;
    ready = 1;
}

static midge_broker *start(void) {
    char conf[600], text[2048];
    midge_config *cfg = midge_config_new();
    midge_broker *b;
    path(conf, sizeof conf, "acl");
    snprintf(text, sizeof text,
             "# two listeners on ephemeral ports\n"
             "listener 0 127.0.0.1\nlistener 0 127.0.0.1\n"
             "allow_anonymous true\nacl_file %s\nsys_interval 0\n"
             "max_queued_messages 5\nmax_inflight_messages 20\n"
             "autosave_interval 10\nlog_type all\n",
             conf);
    write_file("acl", "pattern readwrite #\n");
    write_file("midge.conf", text);
    path(conf, sizeof conf, "midge.conf");

    CHECK(midge_set_log_cb(process_log, NULL, 3) == 0, "log cb");
    CHECK(midge_config_set(cfg, "no_such_option", "1") == -1, "bad option");
    CHECK(midge_config_load(cfg, "/nonexistent/midge.conf") == -1, "no file");
    CHECK(strstr(midge_last_error(), "nonexistent") != NULL, "error names file");
    CHECK(midge_config_load(cfg, conf) == 0, "config_load");
    CHECK(strcmp(midge_last_error(), "") == 0, "error left after success");
    CHECK(midge_config_set(cfg, "message_size_limit", "100000") == 0, "set");
    b = midge_new(cfg);
    midge_config_free(cfg);
    CHECK(b != NULL, "midge_new");
    CHECK(listening_logged, "the process log got no 'listening on' line");
    printf("ok config\n");
    return b;
}

static void ports(midge_broker *b, int *p) {
    CHECK(midge_listener_ports(b, p, 4) == 2, "two listeners");
    CHECK(p[0] > 0 && p[1] > 0 && p[0] != p[1], "ports %d %d", p[0], p[1]);
    CHECK(midge_local_port(b) == p[0], "local port");
    printf("ok ports\n");
}

static void clients(midge_broker *b, struct client *alice, int port) {
    struct client bad;
    int before;
    CHECK(midge_set_broker_log_cb(b, broker_log, &broker_lines, 3) == 0, "log");
    CHECK(midge_set_auth_cb(b, on_auth, NULL) == 0, "auth cb");
    CHECK(midge_set_acl_cb(b, on_acl, NULL) == 0, "acl cb");
    CHECK(midge_set_event_cb(b, on_event, NULL) == 0, "event cb");
    before = process_lines;
    client_open(b, alice, port, "alice", "alice", "pw", 0);
    CHECK(strcmp(cred_id, "alice") == 0 && strcmp(cred_user, "alice") == 0 &&
              strcmp(cred_pass, "pw") == 0,
          "credentials %s %s %s", cred_id, cred_user, cred_pass);
    CHECK(strncmp(cred_addr, "127.0.0.1:", 10) == 0, "address %s", cred_addr);
    CHECK(n_events == 1 && strncmp(events[0], "connected alice alice 127.0.0.1:", 32) == 0,
          "event: %s", events[0]);
    CHECK(alice_logged && process_lines == before,
          "broker lines went to the broker's log callback only");
    client_open(b, &bad, port, "mallory", "bad", "x", 4);
    close(bad.fd);
    CHECK(client_subscribe(b, alice, "hostdeny/x", 0) == 0x80, "denied SUBACK");
    CHECK(client_subscribe(b, alice, "t/x", 0) == 0, "granted SUBACK");
    CHECK(acl_calls >= 2, "acl calls %d", acl_calls);
    printf("ok callbacks\n");
}

/* Two brokers in one process: each one's lines go to its own callback. */
static void second_broker(void) {
    midge_config *cfg = midge_config_new();
    midge_broker *b2;
    struct client zed;
    CHECK(midge_config_set(cfg, "port", "0") == 0, "port");
    b2 = midge_new(cfg);
    midge_config_free(cfg);
    CHECK(b2 != NULL, "second broker");
    CHECK(midge_set_broker_log_cb(b2, second_broker_log, NULL, 3) == 0, "log");
    client_open(b2, &zed, midge_local_port(b2), "zed", NULL, NULL, 0);
    CHECK(zed_logged_second && !zed_logged_first,
          "zed's line went to the wrong broker's callback");
    close(zed.fd);
    midge_free(b2);
    printf("ok log per broker\n");
}

static void publisher_id(midge_broker *b, struct client *alice) {
    midge_stats s;
    CHECK(midge_subscribe_ex(b, "t/#", 1, on_message, NULL) > 0, "subscribe");
    mqtt_publish(alice, "t/a", "hello", 0, 0);
    CHECK(run_until(b, &messages, WAIT_MS), "no message");
    CHECK(strcmp(last_publisher, "alice") == 0, "publisher %s", last_publisher);
    CHECK(midge_publish(b, "t/h", "", 0, 0, 0) == 0, "host publish");
    CHECK(messages == 2 && strcmp(last_publisher, "(null)") == 0,
          "host's own publish: %s", last_publisher);
    memset(&s, 0, sizeof s);
    CHECK(midge_get_stats(b, &s, sizeof s) == 0, "stats");
    CHECK(s.clients_connected == 1 && s.connects_total == 1 &&
              s.messages_received == 2 && s.subscriptions >= 2,
          "stats %lu %lu %lu %lu", (unsigned long)s.clients_connected,
          (unsigned long)s.connects_total, (unsigned long)s.messages_received,
          (unsigned long)s.subscriptions);
    printf("ok publisher and stats\n");
}

static void reload(midge_broker *b, struct client *alice) {
    char acl[600];
    write_file("acl", "pattern readwrite t/#\n");
    CHECK(midge_reload(b) == 0, "reload");
    CHECK(client_subscribe(b, alice, "other", 0) == 0x80, "not denied after reload");
    path(acl, sizeof acl, "acl");
    CHECK(unlink(acl) == 0, "unlink");
    CHECK(midge_reload(b) == -1 && strlen(midge_last_error()) > 0, "reload of nothing");
    CHECK(client_subscribe(b, alice, "t/y", 0) == 0, "previous ACL gone");
    printf("ok reload\n");
}

/* A subscriber that does not read holds the host back, without loss. */
static void flow_control(midge_broker *b, int port) {
    struct client bob;
    unsigned char body[256];
    size_t len;
    int i, rc = 0, sent = 0, got = 0;
    midge_stats s;
    write_file("acl", "pattern readwrite #\n");
    CHECK(midge_reload(b) == 0, "reload");
    CHECK(midge_set_ready_cb(b, on_ready, NULL) == 0, "ready cb");
    client_open(b, &bob, port, "bob", NULL, NULL, 0);
    CHECK(client_subscribe(b, &bob, "bp", 1) == 1, "SUBACK");
    for (i = 0; i < 100 && rc == 0; i++, sent++)
        rc = midge_publish(b, "bp", "m", 1, 1, 0);
    CHECK(rc == MIDGE_PAUSED, "no pause after %d publishes: %d", sent, rc);
    CHECK(midge_publish(b, "bp", "m", 1, 1, 0) == MIDGE_BUSY, "not busy");
    CHECK(strlen(midge_last_error()) > 0, "busy without a message");
    CHECK(midge_publish(b, "t/qos0", "m", 1, 0, 0) == 0, "QoS 0 held back");
    memset(&s, 0, sizeof s);
    CHECK(midge_get_stats(b, &s, sizeof s) == 0 && s.dropped_queue_full == 0,
          "dropped %lu", (unsigned long)s.dropped_queue_full);
    /* bob reads and acknowledges: the queue drains, the host may go on. */
    while (got < sent) {
        int type = read_packet(b, &bob, body, sizeof body, &len);
        CHECK(type == 0x32, "bob got %d after %d of %d", type, got, sent);
        mqtt_puback(&bob, body[2 + 2] << 8 | body[2 + 3]);
        got++;
    }
    CHECK(run_until(b, &ready, WAIT_MS), "no ready callback");
    CHECK(midge_publish(b, "bp", "m", 1, 1, 0) == 0, "still paused");
    close(bob.fd);
    printf("ok flow control\n");
}

static void disconnect(midge_broker *b, struct client *alice) {
    unsigned char body[64];
    size_t len;
    CHECK(midge_disconnect_client(b, "nobody") == -1, "nobody disconnected");
    CHECK(midge_disconnect_client(b, "alice") == 0, "disconnect alice");
    CHECK(read_packet(b, alice, body, sizeof body, &len) == 0, "alice not closed");
    CHECK(strstr(events[n_events - 1], "disconnected alice alice 127.0.0.1:") &&
              strstr(events[n_events - 1], "host program"),
          "event: %s", events[n_events - 1]);
    close(alice->fd);
    printf("ok disconnect\n");
}

/* A host whose epoll loop arms a timerfd from midge_next_timeout_ms: a
 * client that goes silent is closed at its keep-alive deadline (1.5 x 1 s)
 * although midge_fd stays quiet meanwhile. */
static void timer_host(midge_broker *b, int port) {
    struct client carl;
    struct epoll_event ev;
    unsigned char body[16];
    size_t len;
    int ep = epoll_create1(0), tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    long start, end;
    CHECK(ep >= 0 && tfd >= 0, "epoll/timerfd");
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLET;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, midge_fd(b), &ev) == 0, "epoll_ctl");
    ev.events = EPOLLIN;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) == 0, "epoll_ctl");
    carl.have = 0;
    start = now_ms(); /* the broker hears from carl after this */
    carl.fd = tcp_connect(port);
    CHECK(carl.fd >= 0, "connect");
    mqtt_connect_ka(&carl, "carl", NULL, NULL, 1);
    CHECK(read_packet(b, &carl, body, sizeof body, &len) == 0x20, "CONNACK");
    end = now_ms() + WAIT_MS;
    while (!strstr(events[n_events - 1], "disconnected carl") && now_ms() < end) {
        struct itimerspec at;
        struct epoll_event ready[4];
        unsigned long long ticks;
        int t = midge_next_timeout_ms(b);
        memset(&at, 0, sizeof at);
        if (t >= 0) { /* 0 (at once) still needs a nonzero timer */
            at.it_value.tv_sec = t / 1000;
            at.it_value.tv_nsec = (t % 1000) * 1000000L + 1;
        }
        CHECK(timerfd_settime(tfd, 0, &at, NULL) == 0, "timerfd_settime");
        CHECK(epoll_wait(ep, ready, 4, WAIT_MS) >= 0 || errno == EINTR, "epoll_wait");
        if (read(tfd, &ticks, sizeof ticks) < 0)
            CHECK(errno == EAGAIN, "timerfd read");
        CHECK(midge_poll(b, 0) == 0, "midge_poll");
    }
    CHECK(strstr(events[n_events - 1], "disconnected carl") &&
              strstr(events[n_events - 1], "keep-alive"),
          "after %ld ms: %s", now_ms() - start, events[n_events - 1]);
    CHECK(now_ms() - start >= 1000, "closed early");
    close(carl.fd);
    close(tfd);
    close(ep);
    printf("ok timer host\n");
}

/* -------------------------------------------------- the thread-safe handle */
#define THREAD_MESSAGES 2000
static int thread_messages;

static void count(void *user, const char *topic, const void *payload,
                  size_t len, int qos, int retain) {
    (void)user, (void)topic, (void)payload, (void)len, (void)qos, (void)retain;
    thread_messages++;
}

static void *publisher(void *arg) {
    midge_handle *h = arg;
    int i = 0;
    long end = now_ms() + WAIT_MS;
    while (i < THREAD_MESSAGES && now_ms() < end) {
        int rc = midge_handle_publish(h, "th/x", "payload", 7, i % 2, 0);
        CHECK(rc == 0 || rc == MIDGE_BUSY, "handle publish %d", rc);
        if (rc == 0)
            i++;
        else
            usleep(100);
    }
    CHECK(midge_handle_shutdown(h) == 0, "handle shutdown");
    return NULL;
}

static void handle(midge_broker *b, int port) {
    pthread_t t;
    int rc = 0, fd;
    long end = now_ms() + 2 * WAIT_MS;
    midge_handle *h = midge_handle_new(b);
    CHECK(h != NULL, "handle");
    CHECK(midge_subscribe_cb(b, "th/#", 0, count, NULL) > 0, "subscribe");
    CHECK(pthread_create(&t, NULL, publisher, h) == 0, "thread");
    while (rc == 0 && now_ms() < end)
        rc = turn(b, 100);
    CHECK(rc == MIDGE_STOPPED, "midge_poll gave %d", rc);
    CHECK(pthread_join(t, NULL) == 0, "join");
    CHECK(thread_messages == THREAD_MESSAGES, "%d of %d messages",
          thread_messages, THREAD_MESSAGES);
    CHECK(midge_handle_publish(h, "th/x", "", 0, 0, 0) == -1, "publish after stop");
    midge_handle_free(h);
    fd = tcp_connect(port);
    CHECK(fd < 0 && errno == ECONNREFUSED, "listening after shutdown");
    printf("ok handle\n");
}

int main(int argc, char **argv) {
    struct client alice;
    int p[4];
    midge_broker *b;
    CHECK(argc > 1, "usage: features DIR");
    snprintf(dir, sizeof dir, "%s", argv[1]);
    b = start();
    ports(b, p);
    clients(b, &alice, p[1]);
    second_broker();
    publisher_id(b, &alice);
    reload(b, &alice);
    flow_control(b, p[0]);
    disconnect(b, &alice);
    timer_host(b, p[0]);
    handle(b, p[0]);
    midge_free(b);
    printf("ok all\n");
    return 0;
}
