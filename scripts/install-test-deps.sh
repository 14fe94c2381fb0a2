#!/usr/bin/env bash
# Installs the third-party tools the tests drive:
#   - mosquitto_pub / mosquitto_sub (Debian/Ubuntu package mosquitto-clients)
#     for tests/interop.rs
#   - mosquitto_passwd (package mosquitto) for tests/auth_files.rs
#   - valgrind and pkg-config for tests/c_api.rs
#   - the Python library paho-mqtt 2.x (for tests/interop/paho_qos2.py)
# Idempotent: installs only what is missing. Uses sudo only when not root.
set -euo pipefail

PAHO_SPEC='paho-mqtt>=2,<3'

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
else
    SUDO=(sudo)
fi

apt_updated=0
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: apt-get not found; install $* with your package manager" >&2
        exit 1
    fi
    if [ "$apt_updated" -eq 0 ]; then
        ${SUDO[@]+"${SUDO[@]}"} apt-get update
        apt_updated=1
    fi
    ${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# mosquitto-clients
if command -v mosquitto_sub >/dev/null 2>&1 && command -v mosquitto_pub >/dev/null 2>&1; then
    echo "mosquitto-clients: already installed ($(command -v mosquitto_sub))"
else
    apt_install mosquitto-clients
fi

# mosquitto_passwd: password files made by the real tool
if command -v mosquitto_passwd >/dev/null 2>&1 || [ -x /usr/bin/mosquitto_passwd ]; then
    echo "mosquitto_passwd: already installed"
else
    apt_install mosquitto
fi

# valgrind: the C example runs under it
if command -v valgrind >/dev/null 2>&1; then
    echo "valgrind: already installed"
else
    apt_install valgrind
fi

# pkg-config: the C example is built from the installed library with it
if command -v pkg-config >/dev/null 2>&1; then
    echo "pkg-config: already installed"
else
    apt_install pkg-config
fi

# paho-mqtt 2.x (the test script uses the 2.x CallbackAPIVersion API, so a
# 1.x installation counts as missing)
paho_ok() {
    python3 -c 'import paho.mqtt.client; from paho.mqtt.enums import CallbackAPIVersion' \
        >/dev/null 2>&1
}

if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3
fi

if paho_ok; then
    echo "paho-mqtt: already installed ($(python3 -c 'import paho.mqtt; print(paho.mqtt.__version__)'))"
else
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    # Inside a virtualenv install into it; otherwise into the user's site.
    pip_args=(install)
    if python3 -c 'import sys; sys.exit(0 if sys.prefix == sys.base_prefix else 1)'; then
        pip_args+=(--user)
    fi
    # Distributions that mark their Python "externally managed" (PEP 668)
    # refuse a plain pip install; then retry overriding the marker (the
    # install still goes to the user's site, not the system's).
    if ! python3 -m pip "${pip_args[@]}" "$PAHO_SPEC"; then
        python3 -m pip "${pip_args[@]}" --break-system-packages "$PAHO_SPEC"
    fi
    if ! paho_ok; then
        echo "error: paho-mqtt 2.x still not importable by python3" >&2
        exit 1
    fi
    echo "paho-mqtt: installed ($(python3 -c 'import paho.mqtt; print(paho.mqtt.__version__)'))"
fi
