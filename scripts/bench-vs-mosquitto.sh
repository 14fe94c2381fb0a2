#!/usr/bin/env bash
# Side-by-side benchmark of MQTT brokers on loopback, driven by midge-bench:
# midge and mosquitto by default, or any brokers you name.
#
#   scripts/bench-vs-mosquitto.sh [--quick | --full] [--rounds N] [--out FILE]
#                                 [--broker SPEC]... [--only ID,ID...]
#
#   (default)  the main scenarios (10,000 idle connections among them),
#              5 s measured per run, 5 rounds      (~15 minutes for 2 brokers)
#   --quick    a short run of the main scenarios, 3 rounds (~3 minutes)
#   --full     every scenario at QoS 0/1/2, 10,000 idle connections,
#              100 / 10k / 100k subscriptions, 10 s per run (~45 minutes)
#   --broker SPEC  a broker to compare (repeat it; the first one given
#              replaces the default pair, and ratios are of the first broker
#              to each other). SPEC is a built-in name: midge, mosquitto,
#              rumqttd (after 'cargo install rumqttd'; run with its
#              default settings, window 100), or NAME='COMMAND' where
#              {port} in COMMAND is the loopback port to listen on and
#              {dir} an empty directory of the run, e.g.
#              --broker midge --broker mine='/opt/mine -p {port} -d {dir}'
#   --only IDS only these scenarios (ids as printed, comma-separated)
#   --bench-args ARGS  more midge-bench options for every run, e.g.
#              '--inflight 100' (each publisher's window; default 20)
#
# Builds midge and midge-bench in release mode, then runs every scenario
# against every broker, interleaved (midge, mosquitto, midge, mosquitto, ...)
# for N rounds. Each run gets a freshly started broker on a free loopback
# port (same memory baseline every time); mosquitto gets a generated minimal
# config: the same queue limit as midge's default (1000), no persistence, and
# TCP_NODELAY like midge. With 2+ CPUs the brokers run on CPU 0 and the
# generator on the last CPU (taskset), so they do not compete for a core.
# Prints the median of each metric per broker and the ratios as a markdown
# table, with how many runs passed midge-bench's checks (a run fails when an
# acknowledged QoS 1/2 message is lost, a QoS 2 message is duplicated or a
# client is disconnected). The raw JSON line of every run goes to the
# results file. Every run is bounded (5 minutes at most).
#
# Environment: CARGO_TARGET_DIR (default ./target), MOSQUITTO and RUMQTTD
# (paths of those binaries). mosquitto is installed with apt-get when
# missing.
set -euo pipefail

mode=standard
rounds=""
out=""
only=""
extra=""
specs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) mode=quick ;;
        --full) mode=full ;;
        --rounds) rounds="${2:-}"; shift ;;
        --out) out="${2:-}"; shift ;;
        --broker) specs+=("${2:-}"); shift ;;
        --only) only="${2:-}"; shift ;;
        --bench-args) extra="${2:-}"; shift ;;
        -h|--help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$rounds" ] || { [ "$mode" = quick ] && rounds=3 || rounds=5; }
if ! [[ "$rounds" =~ ^[0-9]+$ ]] || [ "$rounds" -lt 1 ]; then
    echo "--rounds: a positive number" >&2; exit 2
fi
[ ${#specs[@]} -gt 0 ] || specs=(midge mosquitto)

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
stamp="$(date +%Y%m%d-%H%M%S)"
[ -n "$out" ] || out="$target/bench-vs-mosquitto-$stamp.jsonl"
mkdir -p "$(dirname "$out")"
: > "$out"

# ------------------------------------------------------------ scenarios
# One per line: id | midge-bench arguments. Each id is run against both
# brokers in every round.
case "$mode" in
quick)
    dur="--duration 1"; warm="--warmup 0.3"
    scenarios="
fan-in-q0|--scenario fan-in --qos 0 --publishers 10
fan-in4-q1|--scenario fan-in --qos 1 --publishers 4
fan-in4-q2|--scenario fan-in --qos 2 --publishers 4
fan-out-q0|--scenario fan-out --qos 0 --subscribers 50
fan-out-q1|--scenario fan-out --qos 1 --subscribers 20
pairs-q1|--scenario pairs --qos 1 --pairs 20
latency-q1|--scenario latency --qos 1 --rate 5000
connections-1k|--scenario connections --connections 1000
subscriptions-10k|--scenario subscriptions --qos 0 --subscriptions 10000"
    ;;
standard)
    dur="--duration 5"; warm="--warmup 1"
    scenarios="
fan-in-q0|--scenario fan-in --qos 0 --publishers 10
fan-in-q1|--scenario fan-in --qos 1 --publishers 10
fan-in-q2|--scenario fan-in --qos 2 --publishers 10
fan-in4-q1|--scenario fan-in --qos 1 --publishers 4
fan-in4-q2|--scenario fan-in --qos 2 --publishers 4
fan-out-q0|--scenario fan-out --qos 0 --subscribers 100
fan-out-q1|--scenario fan-out --qos 1 --subscribers 100
pairs-q1|--scenario pairs --qos 1 --pairs 50
latency-q0|--scenario latency --qos 0 --rate 10000
latency-q1|--scenario latency --qos 1 --rate 10000
connections-10k|--scenario connections --connections 10000
subscriptions-100|--scenario subscriptions --qos 0 --subscriptions 100
subscriptions-10k|--scenario subscriptions --qos 0 --subscriptions 10000"
    ;;
full)
    dur="--duration 10"; warm="--warmup 2"
    scenarios="
fan-in-q0|--scenario fan-in --qos 0 --publishers 10
fan-in-q1|--scenario fan-in --qos 1 --publishers 10
fan-in-q2|--scenario fan-in --qos 2 --publishers 10
fan-in4-q1|--scenario fan-in --qos 1 --publishers 4
fan-in4-q2|--scenario fan-in --qos 2 --publishers 4
fan-in-q0-1k|--scenario fan-in --qos 0 --publishers 10 --size 1024
fan-out-q0|--scenario fan-out --qos 0 --subscribers 100
fan-out-q1|--scenario fan-out --qos 1 --subscribers 100
fan-out-q2|--scenario fan-out --qos 2 --subscribers 100
fan-out-q0-1k|--scenario fan-out --qos 0 --subscribers 1000
pairs-q0|--scenario pairs --qos 0 --pairs 100
pairs-q1|--scenario pairs --qos 1 --pairs 100
pairs-q2|--scenario pairs --qos 2 --pairs 100
latency-q0|--scenario latency --qos 0 --rate 10000
latency-q1|--scenario latency --qos 1 --rate 10000
latency-q2|--scenario latency --qos 2 --rate 10000
latency-q1-fanout|--scenario latency --qos 1 --rate 10000 --subscribers 10
connections-10k|--scenario connections --connections 10000
subscriptions-100|--scenario subscriptions --qos 0 --subscriptions 100
subscriptions-10k|--scenario subscriptions --qos 0 --subscriptions 10000
subscriptions-100k|--scenario subscriptions --qos 0 --subscriptions 100000
subscriptions-100k-q1|--scenario subscriptions --qos 1 --subscriptions 100000"
    ;;
esac

if [ -n "$only" ]; then
    scenarios="$(while IFS='|' read -r id args; do
        [ -n "$id" ] && [[ ",$only," == *",$id,"* ]] && echo "$id|$args"
    done <<<"$scenarios" || true)"
    [ -n "$scenarios" ] || { echo "--only: no scenario of the $mode set is named $only" >&2; exit 2; }
fi

# --------------------------------------------------------------- tools
say() { printf '%s\n' "$*" >&2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/bench-vs-mosquitto.XXXXXX")"
# shellcheck source=scripts/lib/brokers.sh
. "$root/scripts/lib/brokers.sh"
trap 'stop_all_brokers; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

build_and_add_brokers "${specs[@]}" || exit 2
bench="$target/release/midge-bench"

# Open files: the connection scenarios need one descriptor per client in the
# generator and in the broker.
hard="$(ulimit -Hn)"
if [ "$hard" = unlimited ]; then ulimit -n 1048576 2>/dev/null || true; else ulimit -n "$hard" 2>/dev/null || true; fi
need=$((12000))
if [ "$mode" != quick ] && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    say "warning: ulimit -n is $(ulimit -n); the 10,000-connection scenario needs about $need"
fi

ncpu="$(nproc 2>/dev/null || echo 1)"
if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null; then
    broker_pin=(taskset -c 0)
    gen_pin=(taskset -c "$((ncpu - 1))")
    pinning="brokers on CPU 0, generator on CPU $((ncpu - 1))"
else
    broker_pin=()
    gen_pin=()
    pinning="no pinning (1 CPU or no taskset)"
fi

# Runs midge-bench once; appends its JSON line (tagged) to $out.
run_one() {
    local id="$1" broker="$2" port="$3" pid="$4" round="$5" args="$6" line phases
    # Idle-connection runs publish one message per client, without warm-up.
    phases="$dur $warm"
    case "$id" in connections*) phases="$dur" ;; esac
    set +e
    # shellcheck disable=SC2086
    line="$(timeout 300 "${gen_pin[@]}" "$bench" --host 127.0.0.1 --port "$port" --broker-pid "$pid" \
        --label "$broker" --json --quiet $phases $args $extra 2>"$work/bench.err" | grep '^{' | tail -n 1)"
    set -e
    if [ -z "$line" ]; then
        say "   $broker: no result (midge-bench failed):"
        sed 's/^/      /' "$work/bench.err" >&2
        line='{"ok":false,"failure":"no result"}'
    fi
    line="{\"broker\":\"$broker\",\"case\":\"$id\",\"round\":$round,${line#\{}"
    echo "$line" >>"$out"
    local ok rate
    ok="$(field "$line" ok)"
    rate="$(field "$line" delivery_rate)"
    say "   round $round  $(printf '%-9s' "$broker") deliveries/s $(printf '%10.0f' "${rate:-0}")  p99 $(field "$line" lat_p99_us) us  ok=$ok$( [ "$ok" = true ] || echo " ($(field "$line" failure))")"
}

# field LINE KEY: the value of "KEY" in a flat JSON line (strings unquoted).
field() {
    printf '%s\n' "$1" | sed -nE "s/.*\"$2\":(\"([^\"]*)\"|([^,}]*)).*/\2\3/p"
}

say "== $mode mode: $rounds rounds, $pinning, results in $out${extra:+; midge-bench $extra}"
for i in "${!broker_names[@]}"; do
    say "   ${broker_names[$i]}: $(broker_version "${broker_names[$i]}" "${broker_templates[$i]}")"
done
started=$SECONDS
while IFS='|' read -r id args; do
    [ -n "$id" ] || continue
    say "== $id: $args"
    for r in $(seq 1 "$rounds"); do
        for i in "${!broker_names[@]}"; do
            b="${broker_names[$i]}"
            start_broker "$i" "$b-$id-$r" ${broker_pin[@]+"${broker_pin[@]}"} || exit 1
            run_one "$id" "$b" "$port" "$pid" "$r" "$args"
            stop_broker "$pid"
        done
    done
done <<<"$scenarios"
say "== done in $((SECONDS - started)) s"

# -------------------------------------------------------------- report
# median ID BROKER KEY: median over the rounds of KEY (numbers only).
median() {
    grep "\"broker\":\"$2\",\"case\":\"$1\"," "$out" | while IFS= read -r l; do field "$l" "$3"; done |
        grep -E '^-?[0-9.]+$' | sort -g | awk '{v[NR]=$1} END {
            if (NR == 0) { print "n/a"; exit }
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# runs_ok ID BROKER: "ok/total" plus the largest loss seen.
runs_ok() {
    local total ok lost
    total="$(grep -c "\"broker\":\"$2\",\"case\":\"$1\"," "$out" || true)"
    ok="$(grep "\"broker\":\"$2\",\"case\":\"$1\"," "$out" | grep -c '"ok":true' || true)"
    lost="$(grep "\"broker\":\"$2\",\"case\":\"$1\"," "$out" | while IFS= read -r l; do field "$l" lost; done |
        sort -g | tail -n 1)"
    if [ "${lost:-0}" != 0 ] && [ -n "$lost" ]; then echo "$ok/$total, lost ≤$lost"; else echo "$ok/$total"; fi
}
fmt() {
    awk -v v="$1" 'BEGIN {
        if (v == "n/a" || v == "") { print "n/a"; exit }
        if (v >= 100) printf "%.0f\n", v; else if (v >= 10) printf "%.1f\n", v; else printf "%.2f\n", v }'
}
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "n/a" || b == "n/a" || b + 0 == 0) { print "n/a"; exit }
        printf "%.2f\n", a / b }'
}
# Deliveries per CPU-second of the broker (efficiency, robust to a busy box).
efficiency() {
    grep "\"broker\":\"$2\",\"case\":\"$1\"," "$out" | while IFS= read -r l; do
        local d c
        d="$(field "$l" delivered)"; c="$(field "$l" broker_cpu_s)"
        awk -v d="$d" -v c="$c" 'BEGIN { if (c + 0 > 0) printf "%.0f\n", d / c }'
    done | sort -g | awk '{v[NR]=$1} END {
        if (NR == 0) { print "n/a"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# row ID METRIC KEY-OR-FUNCTION: one table row, a median per broker, then
# the ratios of the first broker to each other one and the runs that passed.
row() {
    local id="$1" metric="$2" how="$3" vals=() i line
    for b in "${broker_names[@]}"; do
        if [ "$how" = efficiency ]; then vals+=("$(efficiency "$id" "$b")"); else vals+=("$(median "$id" "$b" "$how")"); fi
    done
    line="| $id | $metric |"
    for i in "${!vals[@]}"; do line+=" $(fmt "${vals[$i]}") |"; done
    for i in "${!vals[@]}"; do [ "$i" -eq 0 ] || line+=" $(ratio "${vals[0]}" "${vals[$i]}") |"; done
    for b in "${broker_names[@]}"; do line+=" $(runs_ok "$id" "$b") |"; done
    echo "$line"
}

first="${broker_names[0]}"
header="| scenario | metric |"
rule="|---|---|"
for b in "${broker_names[@]}"; do header+=" $b |"; rule+="---:|"; done
for b in "${broker_names[@]:1}"; do header+=" $first/$b |"; rule+="---:|"; done
for b in "${broker_names[@]}"; do header+=" $b runs ok |"; rule+="---|"; done
echo
echo "### ${broker_names[*]} ($mode, median of $rounds interleaved rounds; $pinning${extra:+; midge-bench $extra})"
echo
echo "$header"
echo "$rule"
while IFS='|' read -r id args; do
    [ -n "$id" ] || continue
    case "$id" in
    latency*)
        for k in lat_p50_us lat_p99_us lat_p999_us lat_max_us; do
            row "$id" "${k#lat_} (lower is better)" "$k"
        done
        ;;
    connections*)
        row "$id" "connections/s (higher is better)" connect_rate
        row "$id" "broker RSS bytes per connection (lower is better)" rss_per_client_b
        row "$id" "broker RSS KiB with all connected (lower is better)" rss_connected_kb
        ;;
    *)
        row "$id" "deliveries/s (higher is better)" delivery_rate
        row "$id" "deliveries per broker CPU-second (higher is better)" efficiency
        row "$id" "p99 latency us at full load (lower is better)" lat_p99_us
        ;;
    esac
done <<<"$scenarios"
echo
echo "Raw results (one JSON line per run): $out"
# (Phases under half a second are skipped: CPU time is counted in 10 ms ticks.)
gen_max="$(while IFS= read -r l; do
    awk -v c="$(field "$l" gen_cpu_s)" -v d="$(field "$l" duration_s)" \
        'BEGIN { if (d + 0 >= 0.5) printf "%.0f\n", 100 * c / d }'
done <"$out" | sort -g | tail -n 1)"
echo "Generator CPU: at most ${gen_max:-?}% of one core during a measured phase of 0.5 s or more."
