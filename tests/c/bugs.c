/*
 * bugs.c - the C API's bugs of issue 15, each checked with calls that
 * existed before the fix, so this program also builds against an older
 * libmidge (and fails there). Usage: bugs CHECK, CHECK one of last_error,
 * empty_payload, timeout_in_callback, shutdown_refuses, other_thread.
 */
#include <pthread.h>

#include "harness.h"

static midge_broker *new_broker(void) {
    midge_config *cfg = midge_config_new();
    midge_broker *b;
    CHECK(cfg && midge_config_set(cfg, "port", "0") == 0, "config");
    b = midge_new(cfg);
    midge_config_free(cfg);
    CHECK(b != NULL, "midge_new");
    return b;
}

/* A call that succeeds leaves no error behind. */
static void last_error(void) {
    midge_config *cfg = midge_config_new();
    CHECK(midge_config_set(cfg, "no_such_option", "1") == -1, "accepted");
    CHECK(strlen(midge_last_error()) > 0, "no error text");
    CHECK(midge_config_set(cfg, "port", "0") == 0, "port 0 refused");
    CHECK(strcmp(midge_last_error(), "") == 0,
          "error left after a call that succeeded");
    midge_config_free(cfg);
}

static const void *seen_payload;
static size_t seen_len = 99;
static int seen_timeout = -5;
static midge_broker *broker;

static void on_empty(void *user, const char *topic, const void *payload,
                     size_t len, int qos, int retain) {
    (void)user, (void)topic, (void)qos, (void)retain;
    seen_payload = payload;
    seen_len = len;
    seen_timeout = midge_next_timeout_ms(broker);
}

/* An empty payload comes with a pointer that can be read (never 0x1). */
static void empty_payload(void) {
    broker = new_broker();
    CHECK(midge_subscribe_cb(broker, "e", 0, on_empty, NULL) > 0, "subscribe");
    CHECK(midge_publish(broker, "e", NULL, 0, 0, 0) == 0, "publish");
    CHECK(seen_len == 0, "len %lu", (unsigned long)seen_len);
    CHECK(seen_payload != NULL && seen_payload != (const void *)1,
          "payload pointer %p", seen_payload);
    CHECK(*(const char *)seen_payload == 0, "payload byte");
    midge_free(broker);
}

/* Inside a callback the broker is busy: "poll again at once" (0), not
 * "no deadline" (-1). */
static void timeout_in_callback(void) {
    broker = new_broker();
    CHECK(midge_subscribe_cb(broker, "e", 0, on_empty, NULL) > 0, "subscribe");
    CHECK(midge_publish(broker, "e", "x", 1, 0, 0) == 0, "publish");
    CHECK(seen_timeout == 0, "midge_next_timeout_ms in a callback: %d",
          seen_timeout);
    midge_free(broker);
}

/* After midge_shutdown nobody listens: a new client is refused at once. */
static void shutdown_refuses(void) {
    int port, fd;
    broker = new_broker();
    port = midge_local_port(broker);
    CHECK(port > 0, "port");
    midge_shutdown(broker);
    fd = tcp_connect(port);
    CHECK(fd < 0 && errno == ECONNREFUSED,
          "connect after midge_shutdown: fd %d, %s", fd, strerror(errno));
    midge_free(broker);
}

static int thread_result;
static char thread_error[256];

static void *publish_from_thread(void *arg) {
    (void)arg;
    thread_result = midge_publish(broker, "other", "x", 1, 0, 0);
    snprintf(thread_error, sizeof thread_error, "%s", midge_last_error());
    return NULL;
}

static int reentry_result;
static char reentry_error[256];

/* Runs inside midge_publish on the main thread: another thread tries to
 * use the broker meanwhile, then this callback calls back in itself. */
static void on_busy(void *user, const char *topic, const void *payload,
                    size_t len, int qos, int retain) {
    pthread_t t;
    (void)user, (void)topic, (void)payload, (void)len, (void)qos, (void)retain;
    CHECK(pthread_create(&t, NULL, publish_from_thread, NULL) == 0, "thread");
    CHECK(pthread_join(t, NULL) == 0, "join");
    reentry_result = midge_publish(broker, "other", "x", 1, 0, 0);
    snprintf(reentry_error, sizeof reentry_error, "%s", midge_last_error());
}

/* A second thread is told the truth: the broker is in use by another
 * thread, use a handle; a callback is told it is a callback. */
static void other_thread(void) {
    broker = new_broker();
    CHECK(midge_subscribe_cb(broker, "busy", 0, on_busy, NULL) > 0, "subscribe");
    CHECK(midge_publish(broker, "busy", "x", 1, 0, 0) == 0, "publish");
    CHECK(thread_result == -1, "publish from another thread: %d", thread_result);
    CHECK(strstr(thread_error, "another thread") != NULL,
          "message for another thread: \"%s\"", thread_error);
    CHECK(reentry_result == -1 && strstr(reentry_error, "callback") != NULL,
          "message for a callback: \"%s\"", reentry_error);
    midge_free(broker);
}

int main(int argc, char **argv) {
    const char *check = argc > 1 ? argv[1] : "";
    if (strcmp(check, "last_error") == 0)
        last_error();
    else if (strcmp(check, "empty_payload") == 0)
        empty_payload();
    else if (strcmp(check, "timeout_in_callback") == 0)
        timeout_in_callback();
    else if (strcmp(check, "shutdown_refuses") == 0)
        shutdown_refuses();
    else if (strcmp(check, "other_thread") == 0)
        other_thread();
    else
        CHECK(0, "unknown check \"%s\"", check);
    printf("ok %s\n", check);
    return 0;
}
