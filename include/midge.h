/*
 * midge.h - embed the midge MQTT broker in a C program's own event loop.
 *
 * Shape (like redis's ae loop): put midge_fd() in your poll/epoll set
 * (level- or edge-triggered, both work); when it is readable, or when
 * midge_next_timeout_ms() has passed, call midge_poll(b, 0). Everything
 * runs on the thread that calls midge_poll.
 *
 * Threads: a midge_broker belongs to one thread at a time (it may move
 * between threads between calls). The ONLY thread-safe calls are the
 * midge_handle_* functions (a handle queues publishes and a shutdown from
 * any thread and wakes the loop) and midge_last_error (per thread).
 * Callbacks run on the broker's thread, inside midge_poll (and inside
 * midge_publish, midge_subscribe_*, midge_disconnect_client, midge_reload
 * and midge_shutdown); they must not block and must not call midge
 * functions on the same broker, except midge_next_timeout_ms (such calls
 * fail with an error). A call made while another thread is inside the
 * broker fails with an error saying so.
 *
 * Errors: functions returning int/long return -1 (MIDGE_ERROR; pointers:
 * NULL) and set a message for midge_last_error(); a call that succeeds
 * clears it. Some return other codes, listed with them. No function aborts
 * or unwinds into C.
 *
 * Ownership: strings and structs passed to callbacks are valid only during
 * the call; copy what you keep. Payload pointers are never NULL (for an
 * empty payload they point at a zero byte). What you pass in is copied;
 * `user` pointers are yours, handed back untouched. Free each broker with
 * midge_free, each config with midge_config_free, each handle with
 * midge_handle_free.
 *
 * MQTT 5: a message's properties reach the host in midge_message, the
 * host publishes with properties through midge_publish_props, and it may
 * implement enhanced authentication methods (midge_set_auth_method).
 *
 * Link: -lmidge (libmidge.a or libmidge.so) -lpthread -ldl -lm
 * C89/C99/C++ compatible.
 */
#ifndef MIDGE_H
#define MIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MIDGE_OK 0
#define MIDGE_ERROR (-1)
/* midge_publish: not published, a subscriber's queue is full (wait for
 * the ready callback); midge_handle_publish: its queue is full. */
#define MIDGE_BUSY (-2)
/* midge_publish: published, but it filled a subscriber's queue: further
 * QoS 1/2 publishes get MIDGE_BUSY until the ready callback runs. */
#define MIDGE_PAUSED 1
/* midge_poll: the broker has shut down; stop polling, call midge_free. */
#define MIDGE_STOPPED 1

typedef struct MidgeConfig midge_config;
typedef struct MidgeBroker midge_broker;
typedef struct MidgeHandle midge_handle;

/* Text of the last error on this thread ("" if the last call succeeded).
 * Valid until the next midge call on this thread. */
const char *midge_last_error(void);

/* ---------------------------------------------------------------- options
 * By the names of midge's config file (mosquitto's names where mosquitto
 * has the option), every option the file accepts: "port", "bind_address",
 * "listener", "max_connections", "password_file", "acl_file",
 * "allow_anonymous", "persistence", "persistence_location", ... (see the
 * README's Options). As in the file, the per-listener options
 * (max_connections, use_username_as_clientid, protocol) set after
 * "listener" apply to that listener. log_dest, log_type and pid_file are
 * accepted and not used (the host owns logging: see the log callbacks);
 * include_dir only in a file (midge_config_load). */
midge_config *midge_config_new(void);
int midge_config_set(midge_config *cfg, const char *key, const char *value);
/* Reads a mosquitto-format file (include_dir too) into cfg; all or
 * nothing. A file that defines a listener refuses anonymous clients unless
 * it says "allow_anonymous true" (mosquitto 2's rule). */
int midge_config_load(midge_config *cfg, const char *path);
void midge_config_free(midge_config *cfg);

/* -------------------------------------------------------------- the loop */

/* Binds the listeners; cfg NULL for defaults (127.0.0.1:1883). cfg is
 * copied. NULL on error. */
midge_broker *midge_new(const midge_config *cfg);
int midge_fd(midge_broker *b);
/* The first listener's port (useful with port 0). */
int midge_local_port(midge_broker *b);
/* Fills up to n ports of the listeners, in configuration order; returns
 * how many listeners there are (0 after shutdown). */
int midge_listener_ports(midge_broker *b, int *ports, size_t n);

/* Handles ready events and due timers, waiting at most timeout_ms (0: no
 * wait; negative: until something happens). 0, MIDGE_STOPPED or -1. */
int midge_poll(midge_broker *b, int timeout_ms);
/* Milliseconds until midge_poll must run even if midge_fd stays quiet
 * (0: at once, e.g. after a full batch of events or deferred work); -1 if
 * there is no deadline. Inside a callback: 0. */
int midge_next_timeout_ms(midge_broker *b);

/* Publishes connected clients' Wills, closes all connections and the
 * listening sockets (new clients are refused). */
void midge_shutdown(midge_broker *b);
/* Shuts down if needed and frees; NULL is ignored. Not from a callback. */
void midge_free(midge_broker *b);

/* -------------------------------------------------------------- messages */

/* Publishes from the host, written to subscribers before it returns.
 * 0; MIDGE_PAUSED; MIDGE_BUSY (QoS 1/2 while paused; nothing published);
 * -1. With "queue_full drop" nothing pauses: full queues drop, as in
 * mosquitto. */
int midge_publish(midge_broker *b, const char *topic, const void *payload,
                  size_t len, int qos, int retain);
/* Called (inside midge_poll) when publishes refused with MIDGE_BUSY may go
 * again. Publish after midge_poll returns, not from the callback. */
typedef void (*midge_ready_cb)(void *user);
int midge_set_ready_cb(midge_broker *b, midge_ready_cb cb, void *user);

/* Called for each message matching a subscription, starting with the
 * matching retained messages. qos 0-2; retain 1 for a retained message
 * sent because the subscription is new. */
typedef void (*midge_message_cb)(void *user, const char *topic,
                                 const void *payload, size_t len, int qos,
                                 int retain);
/* Returns a subscription id (> 0) or -1. */
long midge_subscribe_cb(midge_broker *b, const char *filter, int qos,
                        midge_message_cb cb, void *user);

/* One MQTT 5 User Property. */
typedef struct midge_user_property {
    const char *name;
    const char *value;
} midge_user_property;

/* A message's MQTT 5 properties: what midge_message points to, and what
 * midge_publish_props takes (every pointer may be NULL: absent). */
typedef struct midge_properties {
    int payload_format;         /* -1 absent, 0 bytes, 1 UTF-8 text */
    int64_t message_expiry;     /* seconds; -1 none */
    const char *content_type;
    const char *response_topic; /* a topic name, no wildcards */
    const void *correlation_data;
    size_t correlation_len;
    const midge_user_property *user_properties; /* in order; names repeat */
    size_t user_property_count;
} midge_properties;

/* A message, for midge_subscribe_ex. Only midge creates these; fields may
 * be added at the end. */
typedef struct midge_message {
    const char *topic;
    const void *payload; /* never NULL */
    size_t len;
    int qos;
    int retain;
    /* The publishing client's id; NULL for the host's own publishes, Wills
     * and retained copies. */
    const char *client_id;
    /* The MQTT 5 properties as the publisher sent them; NULL when it sent
     * none (every 3.x publisher). */
    const midge_properties *properties;
} midge_message;
typedef void (*midge_message_ex_cb)(void *user, const midge_message *m);
long midge_subscribe_ex(midge_broker *b, const char *filter, int qos,
                        midge_message_ex_cb cb, void *user);
/* Ends a subscription of either kind. */
int midge_unsubscribe(midge_broker *b, long id);
/* midge_publish with MQTT 5 properties (NULL: none), forwarded to MQTT 5
 * subscribers; the same return values. */
int midge_publish_props(midge_broker *b, const char *topic,
                        const void *payload, size_t len, int qos, int retain,
                        const midge_properties *props);

/* ------------------------------------------------------ clients and access */

/* What a client presented in its CONNECT. */
typedef struct midge_credentials {
    const char *client_id;
    const char *username; /* NULL without one */
    const void *password; /* NULL without one */
    size_t password_len;
    const char *address; /* "127.0.0.1:50123", "[::1]:50123" */
} midge_credentials;
#define MIDGE_AUTH_ACCEPT 0
#define MIDGE_AUTH_BAD_CREDENTIALS 4 /* CONNACK 4 */
#define MIDGE_AUTH_NOT_AUTHORIZED 5  /* CONNACK 5; also any other value */
/* Decides every CONNECT (after the password file, if any, accepted it). */
typedef int (*midge_auth_cb)(void *user, const midge_credentials *c);
int midge_set_auth_cb(midge_broker *b, midge_auth_cb cb, void *user);

/* One step of an MQTT 5 enhanced authentication exchange (AUTH packets)
 * for a method the host implements. */
typedef struct midge_auth_request {
    const char *client_id; /* the CONNECT's; may be empty */
    const char *username;  /* NULL without one */
    const char *address;
    const char *method;
    const void *data; /* the client's Authentication Data; NULL: none */
    size_t data_len;
    unsigned step;    /* 0 for the CONNECT (or a re-authentication's first
                         AUTH), then 1, 2, ... for each AUTH answer */
    int reauthentication;
} midge_auth_request;
#define MIDGE_AUTH_METHOD_ACCEPT 0   /* CONNACK 0 (AUTH 0 when re-authenticating) */
#define MIDGE_AUTH_METHOD_CONTINUE 1 /* AUTH 0x18 with the data written */
#define MIDGE_AUTH_METHOD_REFUSE (-1) /* CONNACK 0x87 (DISCONNECT 0x87); also
                                         any other value */
/* Answers one step. The callback may write up to out_cap bytes of
 * Authentication Data to send into out, and their number into *out_len
 * (0: none). An accepted CONNECT skips the password and midge_auth_cb
 * checks. At most 16 rounds per exchange. */
typedef int (*midge_auth_method_cb)(void *user, const midge_auth_request *r,
                                    void *out, size_t out_cap,
                                    size_t *out_len);
/* Implements the enhanced authentication method `method` (a CONNECT naming
 * a method no one implements gets CONNACK 0x8C). */
int midge_set_auth_method(midge_broker *b, const char *method,
                          midge_auth_method_cb cb, void *user);

#define MIDGE_ACCESS_PUBLISH 1
#define MIDGE_ACCESS_SUBSCRIBE 2
/* Decides each publish and subscribe (after the ACL file, if any): return
 * nonzero to allow. Denied: a publish is acknowledged and dropped, a
 * subscription gets SUBACK 0x80. username NULL without one. */
typedef int (*midge_acl_cb)(void *user, const char *client_id,
                            const char *username, int access,
                            const char *topic);
int midge_set_acl_cb(midge_broker *b, midge_acl_cb cb, void *user);

#define MIDGE_EVENT_CONNECTED 1
#define MIDGE_EVENT_DISCONNECTED 2
typedef struct midge_event {
    int type; /* MIDGE_EVENT_* */
    const char *client_id;
    const char *username; /* NULL without one */
    const char *address;
    const char *reason; /* why it went away; NULL for CONNECTED */
} midge_event;
typedef void (*midge_event_cb)(void *user, const midge_event *e);
int midge_set_event_cb(midge_broker *b, midge_event_cb cb, void *user);

/* Closes a connected client's connection (its Will is published). 0, or
 * -1 if no client with that id is connected. */
int midge_disconnect_client(midge_broker *b, const char *client_id);
/* Reloads the password and ACL files (what SIGHUP does for the binary);
 * on error the previous files stay in force. */
int midge_reload(midge_broker *b);

/* The broker's counters. Fields may be added at the end. */
typedef struct midge_stats {
    uint64_t clients_connected;
    uint64_t sockets; /* including those that have not sent CONNECT */
    uint64_t connects_total;
    uint64_t sessions; /* online and offline */
    uint64_t subscriptions;
    uint64_t retained;
    uint64_t messages_received;
    uint64_t messages_sent;
    uint64_t bytes_received;
    uint64_t bytes_sent;
    uint64_t dropped_qos0;       /* a client's output buffer was full */
    uint64_t dropped_queue_full; /* a session's queue was full */
    uint64_t publishers_paused;
    uint64_t store_bytes_written;
    uint64_t store_fsyncs;
} midge_stats;
/* Pass sizeof(midge_stats) as size: fills that many bytes. */
int midge_get_stats(midge_broker *b, midge_stats *out, size_t size);

/* ------------------------------------------------------------------- log */

/* Log lines: level 1 error, 2 warn, 3 info, 4 debug, 5 trace; max_level
 * filters. The message is valid during the call. */
typedef void (*midge_log_cb)(void *user, int level, const char *msg);
/* Process-wide: lines of brokers without their own callback, and lines
 * logged outside any broker call. Setting it again replaces it. Fails if
 * another Rust logger is installed in the process. */
int midge_set_log_cb(midge_log_cb cb, void *user, int max_level);
/* This broker's lines (logged during its calls) go to cb instead. */
int midge_set_broker_log_cb(midge_broker *b, midge_log_cb cb, void *user,
                            int max_level);

/* ------------------------------------------- the thread-safe handle
 * Create it on the broker's thread; use it from any thread. It works by
 * queueing: the broker's loop (its next midge_poll) carries the work out,
 * and midge_fd becomes readable to say so. */
midge_handle *midge_handle_new(midge_broker *b);
/* Queues a publish (payload copied). 0; MIDGE_BUSY (4096 publishes are
 * already waiting); -1 (also once the broker has shut down). Queued QoS
 * 1/2 publishes wait while the host is paused (see midge_publish). */
int midge_handle_publish(const midge_handle *h, const char *topic,
                         const void *payload, size_t len, int qos,
                         int retain);
/* The next midge_poll shuts the broker down and returns MIDGE_STOPPED. */
int midge_handle_shutdown(const midge_handle *h);
/* Once per handle, from any thread; may outlive the broker. */
void midge_handle_free(midge_handle *h);

#ifdef __cplusplus
}
#endif

#endif /* MIDGE_H */
