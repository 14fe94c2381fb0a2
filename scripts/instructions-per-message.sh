#!/usr/bin/env bash
# CPU cost per message, counted rather than timed: user-space instructions
# per fan-in message (P publishers -> 1 subscriber, 64-byte payloads, QoS 0
# unless --qos says otherwise)
# of each broker, run under valgrind's callgrind. Instruction counts do not
# depend on what else the machine is doing, so the numbers can be compared
# between runs and machines of the same architecture.
#
#   scripts/instructions-per-message.sh [--broker SPEC]... [--messages N]
#                                       [--publishers P] [--qos Q] [--top K]
#                                       [--protocol 4|5]
#
#   --broker SPEC  as in bench-vs-mosquitto.sh: midge, mosquitto, rumqttd
#                  or NAME='COMMAND with {port}' (default: midge, mosquitto)
#   --messages N   the smaller of the two runs (default 20000; the larger
#                  is 6N)
#   --publishers P publishers (default 10)
#   --qos Q        QoS of the publishes and the subscription (default 0)
#   --protocol N   MQTT protocol level of the clients: 4 (3.1.1, default)
#                  or 5
#   --top K        the K functions with the most instructions (self cost)
#                  in the first broker's larger run (default 15; 0: none)
#
# Each broker runs twice, freshly started under callgrind, and midge-bench
# publishes N and then 6N messages; the broker's instructions of the first
# run are subtracted from those of the second, so start-up, connecting,
# subscribing and shutting down cancel out and what is left is divided by
# the difference in messages delivered. Kernel time (the syscalls) is not
# counted. Needs valgrind (scripts/install-test-deps.sh installs it).
#
# Environment: CARGO_TARGET_DIR, MOSQUITTO, RUMQTTD as for
# bench-vs-mosquitto.sh.
set -euo pipefail

messages=20000
publishers=10
qos=0
protocol=4
top=15
specs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --broker) specs+=("${2:-}"); shift ;;
        --messages) messages="${2:-}"; shift ;;
        --publishers) publishers="${2:-}"; shift ;;
        --qos) qos="${2:-}"; shift ;;
        --top) top="${2:-}"; shift ;;
        --protocol) protocol="${2:-}"; shift ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
for v in messages publishers qos top protocol; do
    if ! [[ "${!v}" =~ ^[0-9]+$ ]]; then echo "--$v: a number" >&2; exit 2; fi
done
[ "$messages" -ge 1000 ] || { echo "--messages: at least 1000" >&2; exit 2; }
[ "$publishers" -ge 1 ] || { echo "--publishers: at least 1" >&2; exit 2; }
[ "$qos" -le 2 ] || { echo "--qos: 0, 1 or 2" >&2; exit 2; }
[ ${#specs[@]} -gt 0 ] || specs=(midge mosquitto)

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"

say() { printf '%s\n' "$*" >&2; }
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
    say "valgrind is needed: scripts/install-test-deps.sh installs it"; exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/instructions-per-message.XXXXXX")"
# shellcheck source=scripts/lib/brokers.sh
. "$root/scripts/lib/brokers.sh"
trap 'stop_all_brokers; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
# A broker under valgrind takes seconds to start.
start_tries=600

build_and_add_brokers "${specs[@]}" || exit 2
bench="$target/release/midge-bench"

# measure INDEX COUNT: runs broker INDEX under callgrind while COUNT
# messages are published; prints "instructions delivered" and leaves the
# profile in $run_dir.
measure() {
    local i="$1" count="$2" tag line delivered ir
    tag="${broker_names[$i]}-$count"
    start_broker "$i" "$tag" valgrind --tool=callgrind \
        --callgrind-out-file="$work/$tag/callgrind.out" || return 1
    set +e
    line="$(timeout 900 "$bench" --host 127.0.0.1 --port "$port" --scenario fan-in --qos "$qos" \
        --protocol "$protocol" --publishers "$publishers" --count "$count" --duration 86400 --warmup 0 \
        --setup-timeout 120 --json --quiet 2>"$work/bench.err" | grep '^{' | tail -n 1)"
    set -e
    stop_broker "$pid"
    delivered="$(printf '%s\n' "$line" | sed -nE 's/.*"total_delivered":([0-9]+).*/\1/p')"
    if [ -z "$delivered" ]; then
        say "   ${broker_names[$i]}: midge-bench failed:"
        sed 's/^/      /' "$work/bench.err" >&2
        return 1
    fi
    ir="$(sed -nE 's/^(summary|totals): ([0-9]+).*/\2/p' "$work/$tag/callgrind.out" | head -n 1)"
    [ -n "$ir" ] || { say "   ${broker_names[$i]}: no callgrind profile"; return 1; }
    echo "$ir $delivered"
}

small="$messages"
large=$((messages * 6))
say "== QoS $qos fan-in, $publishers publishers -> 1 subscriber, 64-byte payloads; $small then $large messages"
results=()
for i in "${!broker_names[@]}"; do
    b="${broker_names[$i]}"
    say "== $b: $(broker_version "$b" "${broker_templates[$i]}")"
    read -r ir1 d1 < <(measure "$i" "$small") || exit 1
    say "   $small messages: $ir1 instructions, $d1 delivered"
    read -r ir2 d2 < <(measure "$i" "$large") || exit 1
    say "   $large messages: $ir2 instructions, $d2 delivered"
    per="$(awk -v a="$ir1" -v b="$ir2" -v x="$d1" -v y="$d2" \
        'BEGIN { if (y > x) printf "%.0f\n", (b - a) / (y - x); else print "n/a" }')"
    results+=("| $b | $per | $d1 / $d2 |")
    if [ "$i" -eq 0 ] && [ "$top" -gt 0 ]; then
        cp "$work/$b-$large/callgrind.out" "$work/profile.out"
        profile_of="$b"
    fi
done

echo
echo "### User-space instructions per message (QoS $qos fan-in, $publishers publishers -> 1 subscriber, 64-byte payloads, protocol level $protocol)"
echo
echo "| broker | instructions per message | messages delivered (two runs) |"
echo "|---|---:|---:|"
printf '%s\n' "${results[@]}"
if [ "$top" -gt 0 ] && [ -f "$work/profile.out" ]; then
    echo
    echo "### Top $top functions of $profile_of ($large-message run, self cost, whole run)"
    echo
    echo '```'
    callgrind_annotate --inclusive=no --threshold=100 "$work/profile.out" 2>/dev/null |
        awk '/PROGRAM TOTALS/ { print } f && NF && !/^-+$/ { print } /file:function/ { f = 1 }' |
        sed -E 's/ \[[^]]*\]$//; s/\?\?\?://' | head -n "$((top + 1))"
    echo '```'
fi
