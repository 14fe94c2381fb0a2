//! Users and access control from mosquitto-format files.
