/*
 * mqtt5.c - the C API and MQTT 5: a host subscription reads a v5
 * publisher's properties (midge_message.properties), the host publishes
 * with properties (midge_publish_props) to a v5 subscriber, and implements
 * an enhanced authentication method (midge_set_auth_method) through an
 * AUTH exchange. Clients speak raw MQTT 5 bytes. Prints "ok NAME" per
 * check and "ok all" at the end.
 */
#include "harness.h"

/* An MQTT 5 CONNECT (Clean Start) with a property block `props` of
 * `plen` bytes (plen < 128). */
static void connect5(struct client *c, const char *id,
                     const unsigned char *props, size_t plen) {
    unsigned char b[512];
    size_t n = put_str(b, "MQTT");
    b[n++] = 5;
    b[n++] = 0x02;
    b[n++] = 0;
    b[n++] = 60;
    b[n++] = (unsigned char)plen;
    memcpy(b + n, props, plen);
    n += plen;
    n += put_str(b + n, id);
    send_packet(c, 0x10, b, n);
}

/* A property `id` with a two-byte-length string value, at p. */
static size_t prop_str(unsigned char *p, unsigned char id, const char *s) {
    p[0] = id;
    return 1 + put_str(p + 1, s);
}

/* True if `needle` occurs in the len bytes at hay. */
static int contains(const unsigned char *hay, size_t len, const char *needle) {
    size_t n = strlen(needle), i;
    for (i = 0; i + n <= len; i++)
        if (memcmp(hay + i, needle, n) == 0)
            return 1;
    return 0;
}

static void open5(midge_broker *b, struct client *c, int port, const char *id,
                  const unsigned char *props, size_t plen) {
    c->have = 0;
    c->fd = tcp_connect(port);
    CHECK(c->fd >= 0, "connect: %s", strerror(errno));
    connect5(c, id, props, plen);
    (void)b;
}

/* ------------------------------------------------ properties both ways */

static char seen_user[64];
static char seen_ctype[64];
static volatile int got_message;

static void on_message(void *user, const midge_message *m) {
    const midge_properties *p = m->properties;
    (void)user;
    CHECK(p != NULL, "a v5 publisher's message has properties");
    CHECK(p->user_property_count == 1, "one user property");
    snprintf(seen_user, sizeof seen_user, "%s=%s", p->user_properties[0].name,
             p->user_properties[0].value);
    snprintf(seen_ctype, sizeof seen_ctype, "%s",
             p->content_type ? p->content_type : "(none)");
    CHECK(p->payload_format == -1 && p->message_expiry == 30,
          "format absent, expiry 30");
    got_message = 1;
}

static void properties_both_ways(midge_broker *b, int port) {
    struct client pub, sub;
    unsigned char body[512], props[128];
    size_t len, n = 0, plen;
    midge_user_property up = {"origin", "c-host"};
    midge_properties out;

    CHECK(midge_subscribe_ex(b, "in/#", 0, on_message, NULL) > 0, "subscribe");
    open5(b, &pub, port, "pub5", NULL, 0);
    CHECK(read_packet(b, &pub, body, sizeof body, &len) == 0x20, "CONNACK");
    /* PUBLISH in/a, QoS 0: Message Expiry 30, Content Type, User Property. */
    n = put_str(body, "in/a");
    plen = 0;
    props[plen++] = 0x02;
    props[plen++] = 0;
    props[plen++] = 0;
    props[plen++] = 0;
    props[plen++] = 30;
    plen += prop_str(props + plen, 0x03, "text/plain");
    props[plen++] = 0x26;
    plen += put_str(props + plen, "k");
    plen += put_str(props + plen, "v");
    body[n++] = (unsigned char)plen;
    memcpy(body + n, props, plen);
    n += plen;
    body[n++] = 'x';
    send_packet(&pub, 0x30, body, n);
    CHECK(run_until(b, &got_message, WAIT_MS), "host callback");
    CHECK(strcmp(seen_user, "k=v") == 0, "user property %s", seen_user);
    CHECK(strcmp(seen_ctype, "text/plain") == 0, "content type %s", seen_ctype);
    printf("ok properties reach the host\n");

    open5(b, &sub, port, "sub5", NULL, 0);
    CHECK(read_packet(b, &sub, body, sizeof body, &len) == 0x20, "CONNACK");
    n = 0;
    body[n++] = 0;
    body[n++] = 1;
    body[n++] = 0; /* no SUBSCRIBE properties */
    n += put_str(body + n, "out");
    body[n++] = 0;
    send_packet(&sub, 0x82, body, n);
    CHECK(read_packet(b, &sub, body, sizeof body, &len) == 0x90, "SUBACK");
    memset(&out, 0, sizeof out);
    out.payload_format = 1;
    out.message_expiry = -1;
    out.response_topic = "reply/here";
    out.correlation_data = "id-7";
    out.correlation_len = 4;
    out.user_properties = &up;
    out.user_property_count = 1;
    CHECK(midge_publish_props(b, "out", "hi", 2, 0, 0, &out) == MIDGE_OK,
          "midge_publish_props: %s", midge_last_error());
    CHECK(read_packet(b, &sub, body, sizeof body, &len) == 0x30, "PUBLISH");
    CHECK(contains(body, len, "reply/here") && contains(body, len, "id-7") &&
              contains(body, len, "origin") && contains(body, len, "c-host"),
          "properties of the host's publish");
    close(pub.fd);
    close(sub.fd);
    printf("ok the host publishes with properties\n");
}

/* ------------------------------------------- enhanced authentication */

static int token(void *user, const midge_auth_request *r, void *out,
                 size_t cap, size_t *out_len) {
    (void)user;
    if (r->step == 0 && r->data_len == 5 && memcmp(r->data, "hello", 5) == 0) {
        CHECK(cap >= 9, "room for the challenge");
        memcpy(out, "challenge", 9);
        *out_len = 9;
        return MIDGE_AUTH_METHOD_CONTINUE;
    }
    if (r->step == 1 && r->data_len == 6 && memcmp(r->data, "secret", 6) == 0) {
        memcpy(out, "welcome", 7);
        *out_len = 7;
        return MIDGE_AUTH_METHOD_ACCEPT;
    }
    return MIDGE_AUTH_METHOD_REFUSE;
}

static void enhanced_authentication(midge_broker *b, int port) {
    struct client c;
    unsigned char body[512], props[64];
    size_t len, plen = 0, n;

    CHECK(midge_set_auth_method(b, "TOKEN", token, NULL) == 0, "set method");
    plen += prop_str(props + plen, 0x15, "TOKEN");
    plen += prop_str(props + plen, 0x16, "hello");
    open5(b, &c, port, "tok", props, plen);
    CHECK(read_packet(b, &c, body, sizeof body, &len) == 0xF0, "AUTH");
    CHECK(body[0] == 0x18 && contains(body, len, "challenge"), "challenge");
    n = 0;
    body[n++] = 0x18;
    plen = 0;
    plen += prop_str(props + plen, 0x15, "TOKEN");
    plen += prop_str(props + plen, 0x16, "secret");
    body[n++] = (unsigned char)plen;
    memcpy(body + n, props, plen);
    n += plen;
    send_packet(&c, 0xF0, body, n);
    CHECK(read_packet(b, &c, body, sizeof body, &len) == 0x20, "CONNACK");
    CHECK(body[1] == 0 && contains(body, len, "welcome"), "accepted");
    close(c.fd);
    printf("ok an AUTH exchange through the host's method\n");
}

int main(void) {
    midge_config *cfg = midge_config_new();
    midge_broker *b;
    int port;
    CHECK(midge_config_set(cfg, "listener", "0 127.0.0.1") == 0, "listener");
    CHECK(midge_config_set(cfg, "allow_anonymous", "true") == 0, "anonymous");
    CHECK(midge_config_set(cfg, "sys_interval", "0") == 0, "sys_interval");
    b = midge_new(cfg);
    midge_config_free(cfg);
    CHECK(b != NULL, "midge_new: %s", midge_last_error());
    CHECK(midge_listener_ports(b, &port, 1) == 1, "one listener");
    properties_both_ways(b, port);
    enhanced_authentication(b, port);
    midge_free(b);
    printf("ok all\n");
    return 0;
}
