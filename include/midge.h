/*
 * midge.h - embed the midge MQTT broker in a C program's own event loop.
 *
 * Shape (like redis's ae loop): put midge_fd() in your poll/epoll set; when
 * it is readable, or when midge_next_timeout_ms() has passed, call
 * midge_poll(b, 0). Everything runs on the thread that calls midge_poll.
 *
 * Errors: functions returning int/long return -1 (pointers: NULL) and set a
 * message for midge_last_error(). No function aborts or unwinds into C.
 * Callbacks must not call midge functions on the same broker (such calls
 * fail with an error).
 *
 * Link: -lmidge (libmidge.a or libmidge.so) -lpthread -ldl -lm
 */
#ifndef MIDGE_H
#define MIDGE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct MidgeConfig midge_config;
typedef struct MidgeBroker midge_broker;

/* Called for each message matching a subscription; pointers valid only
 * during the call. qos 0-2; retain 1 for a retained message sent because
 * the subscription is new. */
typedef void (*midge_message_cb)(void *user, const char *topic,
                                 const void *payload, size_t len, int qos,
                                 int retain);

/* Log lines: level 1 error, 2 warn, 3 info, 4 debug, 5 trace. */
typedef void (*midge_log_cb)(void *user, int level, const char *msg);

/* Text of the last error on this thread ("" if none). */
const char *midge_last_error(void);

/* Options, by the names of midge's config file (mosquitto's names where
 * mosquitto has the option): "port", "bind_address", "listener",
 * "max_connections", "max_inflight_messages", "max_queued_messages",
 * "message_size_limit", "max_outgoing_bytes", "connect_timeout",
 * "queue_full", "queue_overflow", "queue_qos0_messages",
 * "allow_zero_length_clientid". */
midge_config *midge_config_new(void);
int midge_config_set(midge_config *cfg, const char *key, const char *value);
void midge_config_free(midge_config *cfg);

/* Binds the listeners; cfg NULL for defaults (127.0.0.1:1883). */
midge_broker *midge_new(const midge_config *cfg);
int midge_fd(midge_broker *b);
int midge_local_port(midge_broker *b);

/* Handles ready events and due timers, waiting at most timeout_ms
 * (0: no wait; negative: until something happens). */
int midge_poll(midge_broker *b, int timeout_ms);
/* Milliseconds until the broker's next deadline; -1 if none. */
int midge_next_timeout_ms(midge_broker *b);

/* Publishes from the host; written to subscribers before it returns. */
int midge_publish(midge_broker *b, const char *topic, const void *payload,
                  size_t len, int qos, int retain);
/* Returns a subscription id (> 0) or -1. */
long midge_subscribe_cb(midge_broker *b, const char *filter, int qos,
                        midge_message_cb cb, void *user);
int midge_unsubscribe(midge_broker *b, long id);

/* Process-wide, once. */
int midge_set_log_cb(midge_log_cb cb, void *user, int max_level);

/* Publishes connected clients' Wills, closes all connections. */
void midge_shutdown(midge_broker *b);
/* Shuts down if needed and frees; NULL is ignored. */
void midge_free(midge_broker *b);

#ifdef __cplusplus
}
#endif

#endif /* MIDGE_H */
