#!/usr/bin/env bash
# Compares tunnel with other TCP forwarders on this machine (loopback and two network
# namespaces of its own) and writes benches/compare/results/<date>.md and .png.
#
#   benches/compare/run.sh                       # every path and metric, about 11 minutes
#   benches/compare/run.sh --paths direct,socat,tunnel-aes --metrics bulk1,rtt
#   COMPARE_RUNS=1 COMPARE_SECONDS=2 benches/compare/run.sh   # quick look
#
# Options go to compare.py (see --help); each has a COMPARE_* environment variable too.
# COMPARE_SKIP_BUILD=1 uses target/release/tunnel as it is. Needs root (namespaces, sshd).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export COMPARE_ID=${COMPARE_ID:-$$}
driver=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$driver" ]] && kill -0 "$driver" 2>/dev/null; then
        kill -TERM "$driver" 2>/dev/null || true
        wait "$driver" 2>/dev/null || true
    fi
    # Namespaces this run made (named after its pid) go even if the driver was killed.
    for ns in "${COMPARE_ID}c" "${COMPARE_ID}s"; do
        if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns"; then
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
    exit "$rc"
}
trap cleanup EXIT INT TERM

if [[ $(id -u) -ne 0 ]]; then
    echo "error: run as root: the bench makes network namespaces and starts sshd" >&2
    exit 3
fi

missing=()
for tool in socat spiped stunnel sshd:/usr/sbin/sshd ssh ssh-keygen iperf3 ip ss tc gcc openssl taskset; do
    name=${tool%%:*}
    path=${tool#*:}
    [[ "$path" == "$tool" ]] && path=$name
    command -v "$path" >/dev/null 2>&1 || missing+=("$name")
done
if ((${#missing[@]})); then
    echo "error: missing ${missing[*]}; install them with:" >&2
    echo "  apt-get install stunnel4 spiped openssh-server openssh-client socat iperf3" \
        "iproute2 gcc openssl python3-matplotlib" >&2
    exit 3
fi

# The driver needs Python 3 and, for the chart, matplotlib: prefer an interpreter that has it.
python=""
for candidate in /usr/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then
        [[ -z "$python" ]] && python=$candidate
        if "$candidate" -c 'import matplotlib' 2>/dev/null; then
            python=$candidate
            break
        fi
    fi
done
if [[ -z "$python" ]]; then
    echo "error: python3 not found" >&2
    exit 3
fi

if [[ "${COMPARE_SKIP_BUILD:-0}" != 1 ]]; then
    (cd "$root" && cargo build --release --bin tunnel)
fi

# Holding thousands of idle connections takes two sockets each in one relay process.
ulimit -n "$(ulimit -Hn)"

start=$(date +%s)
"$python" "$here/compare.py" "$@" &
driver=$!
rc=0
wait "$driver" || rc=$?
driver=""
echo "compare: finished in $(($(date +%s) - start)) s" >&2
exit "$rc"
