# shellcheck shell=bash
# Starting MQTT brokers for the benchmark scripts (sourced, not run).
#
# A broker is given as NAME (a built-in: midge, mosquitto, rumqttd) or as
# NAME='COMMAND', a command line in which {port} stands for the loopback
# port to listen on and {dir} for an empty directory of the run (for a
# config file or a log). Each run gets a fresh broker on a free port.
#
# Expects: $root (the repository), $target (cargo's target directory),
# $work (a scratch directory), and a function say.
# shellcheck disable=SC2154 # target and work are the caller's.

# The built-ins: a command template for NAME, with the config file it
# needs written into {dir} by a small shell prelude.
builtin_template() {
    local bin
    case "$1" in
    midge)
        printf '%q --port {port}' "$target/release/midge"
        ;;
    mosquitto)
        bin="$(find_mosquitto)" || return 1
        # The same queue limit as midge's default (1000), no persistence,
        # TCP_NODELAY like midge; it stays the user who started it (as root
        # it would switch users, and then valgrind could not write its
        # profile).
        printf '%s' "printf 'user $(id -un)\nlistener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000\npersistence false\nlog_dest file {dir}/mosquitto.log\nset_tcp_nodelay true\n' >{dir}/mosquitto.conf && exec $(printf '%q' "$bin") -c {dir}/mosquitto.conf"
        ;;
    rumqttd)
        bin="$(find_rumqttd)" || return 1
        # rumqttd's own defaults (its rumqttd.toml) for one MQTT 3.1.1
        # listener on loopback: window 100, no console, no metrics.
        printf '%s' "printf 'id = 0\n[router]\nid = 0\nmax_connections = 20010\nmax_outgoing_packet_count = 200\nmax_segment_size = 104857600\nmax_segment_count = 10\n[v4.1]\nname = \"v4-1\"\nlisten = \"127.0.0.1:{port}\"\nnext_connection_delay_ms = 0\n[v4.1.connections]\nconnection_timeout_ms = 60000\nmax_payload_size = 20480\nmax_inflight_count = 100\ndynamic_filters = true\n' >{dir}/rumqttd.toml && exec $(printf '%q' "$bin") --quiet --config {dir}/rumqttd.toml"
        ;;
    *) return 1 ;;
    esac
}

find_mosquitto() {
    local m="${MOSQUITTO:-$(command -v mosquitto || true)}"
    [ -n "$m" ] || { [ -x /usr/sbin/mosquitto ] && m=/usr/sbin/mosquitto; } || true
    if [ -z "$m" ]; then
        say "== mosquitto not found: installing it with apt-get"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mosquitto >&2
        m="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
    fi
    [ -x "$m" ] || { say "mosquitto is not available"; return 1; }
    echo "$m"
}

find_rumqttd() {
    local r="${RUMQTTD:-$(command -v rumqttd || true)}"
    [ -n "$r" ] || { [ -x "$HOME/.cargo/bin/rumqttd" ] && r="$HOME/.cargo/bin/rumqttd"; } || true
    if [ -z "$r" ] || [ ! -x "$r" ]; then
        say "rumqttd not found: install it with 'cargo install rumqttd' (or set RUMQTTD)"
        return 1
    fi
    echo "$r"
}

# add_broker SPEC: appends to the arrays broker_names and broker_templates.
add_broker() {
    local spec="$1" name tmpl
    case "$spec" in
    *=*) name="${spec%%=*}"; tmpl="${spec#*=}" ;;
    midge | mosquitto | rumqttd) name="$spec"; tmpl="$(builtin_template "$name")" || return 1 ;;
    *) say "--broker $spec: not a built-in (midge, mosquitto, rumqttd); give NAME='COMMAND with {port}'"; return 2 ;;
    esac
    if ! [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]]; then
        say "--broker: the name '$name' may only hold letters, digits, '.', '_' and '-'"; return 2
    fi
    case "$tmpl" in *'{port}'*) ;; *) say "--broker $name: the command has no {port}"; return 2 ;; esac
    broker_names+=("$name")
    broker_templates+=("$tmpl")
}

# build_and_add_brokers SPEC...: builds midge and midge-bench in release
# mode, then fills broker_names and broker_templates from the SPECs.
build_and_add_brokers() {
    echo "== building midge and midge-bench (release)" >&2
    cargo build --release --bins >&2 || return 1
    broker_names=()
    broker_templates=()
    local spec
    for spec in "$@"; do
        add_broker "$spec" || return 2
    done
}

# A one-line description of a broker (its version when it is a built-in).
broker_version() {
    case "$1" in
    midge) "$target/release/midge" --version 2>/dev/null | head -n 1 ;;
    mosquitto) "$(find_mosquitto)" -h 2>/dev/null | head -n 1 ;;
    rumqttd) echo "rumqttd $("$(find_rumqttd)" --version 2>/dev/null | awk '{print $2}') (window 100)" ;;
    *) echo "$1: $2" ;;
    esac
}

listening() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
port_busy() { ss -tanH "( sport = :$1 or dport = :$1 )" 2>/dev/null | grep -q .; }
free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 12000))
        port_busy "$p" || { echo "$p"; return 0; }
    done
    say "no free port found"; return 1
}
# wait_listening PORT PID TRIES: polls every 50 ms.
wait_listening() {
    local port="$1" pid="$2" tries="${3:-100}" i
    for i in $(seq 1 "$tries"); do
        listening "$port" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# start_broker INDEX TAG [PREFIX...]: a fresh broker on a fresh port, its
# command prefixed by PREFIX (taskset, valgrind); sets port, pid and
# run_dir. exec keeps the pid the broker's own (for its memory and CPU).
port=""; pid=""; run_dir=""
pids=()
start_broker() {
    local i="$1" tag="$2" cmd
    shift 2
    port="$(free_port)"
    run_dir="$work/$tag"
    mkdir -p "$run_dir"
    cmd="${broker_templates[$i]//\{port\}/$port}"
    cmd="${cmd//\{dir\}/$run_dir}"
    case "$cmd" in
    *'exec '*) ;;
    *) cmd="exec $cmd" ;;
    esac
    if [ $# -gt 0 ]; then
        # The prefix goes right before the broker's own binary.
        cmd="${cmd/exec /exec $(printf '%q ' "$@")}"
    fi
    bash -c "$cmd" >"$run_dir/out" 2>&1 &
    pid=$!
    pids+=("$pid")
    if ! wait_listening "$port" "$pid" "${start_tries:-100}"; then
        say "${broker_names[$i]} did not start ($cmd):"
        cat "$run_dir"/* >&2 2>/dev/null || true
        return 1
    fi
}

# stop_broker PID: SIGTERM and wait (a broker under valgrind then writes
# its profile).
stop_broker() {
    local p="$1" rest=() q
    if ! kill -0 "$p" 2>/dev/null; then
        say "   warning: the broker (pid $p) had died"
    fi
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    for q in "${pids[@]}"; do [ "$q" = "$p" ] || rest+=("$q"); done
    pids=(${rest[@]+"${rest[@]}"})
}

stop_all_brokers() {
    local p
    for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
    for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
    pids=()
}
