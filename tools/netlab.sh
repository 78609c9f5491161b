#!/usr/bin/env bash
# A small internet in network namespaces, for the NAT tests (docs/network.md, tests/libobs_nat.rs).
#
#   tools/netlab.sh up [--a cone|open|symmetric] [--b cone|symmetric] [--no-stun-a] [--impair MS,PERCENT]
#   tools/netlab.sh down
#
#   namespace      address(es)                     role
#   ${P}-inet      203.0.113.254/24 on a bridge    "the internet"; the STUN server (coturn) on
#                  203.0.113.100, 203.0.113.101    two addresses (the network test asks both)
#   ${P}-ra        wan 203.0.113.1, lan 10.0.1.1   router NAT-A (the streamer's home router)
#   ${P}-a         10.0.1.2                        the streamer's PC: the plugin in libobs
#   ${P}-rb        wan 203.0.113.2, lan 10.0.2.1   router NAT-B (the members' home router)
#   ${P}-b         10.0.2.2; 203.0.113.50          psn-sim: its voice members bind 10.0.2.2 (behind
#                                                  NAT-B); its rtcBridge binds 203.0.113.50 (a
#                                                  direct link to the internet, by source routing)
# Documentation (203.0.113.0/24) and private (10/8) ranges, inside these namespaces only: the
# internet namespace has no route out, nothing leaves the machine.
#
# Routers: --a/--b cone = MASQUERADE (one mapping per local port, replies only from where we
# sent: a port-restricted cone, as a home router); symmetric = MASQUERADE --random-fully (a new
# port per destination); open (A only) = cone plus every inbound UDP port forwarded to the PC
# (a "DMZ host": endpoint-independent filtering). Every router drops unsolicited packets to
# itself before conntrack confirms them (INPUT --ctstate NEW DROP): otherwise the other side's
# first check leaves an entry that makes the router pick another port for our own later
# packets, and hole punching fails for reasons no home router has.
# --no-stun-a: NAT-A drops everything to the STUN server (row 4).
# --impair MS,PERCENT: NAT-A's internet link delays every UDP packet MS ms and loses PERCENT %,
# each way (so every media path, to a member or the bridge, gets it once per direction). This
# kernel has no tc netem: loss is iptables' `statistic` match, delay tools/netlab_delay.py on an
# NFQUEUE (with --queue-bypass: if it dies, packets pass undelayed rather than vanish).
set -euo pipefail
P="${NETLAB_PREFIX:-psnnl}"
RUN="${NETLAB_RUN_DIR:-/run/$P}"
NS=(inet ra a rb b)

die() { echo "netlab: $*" >&2; exit 1; }
ns() { local n="$1"; shift; ip netns exec "$P-$n" "$@"; }

down() {
  local n pid
  # Every process in our namespaces is one this lab (or its test) started.
  for n in "${NS[@]}"; do
    for pid in $(ip netns pids "$P-$n" 2>/dev/null || true); do kill "$pid" 2>/dev/null || true; done
  done
  sleep 0.2
  for n in "${NS[@]}"; do
    for pid in $(ip netns pids "$P-$n" 2>/dev/null || true); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$P-$n" 2>/dev/null || true
  done
  rm -rf "$RUN"
}

# veth pair: $1 ns/name, $2 ns/name (names are set inside the namespaces).
link() {
  local ns1="${1%/*}" if1="${1#*/}" ns2="${2%/*}" if2="${2#*/}"
  local t1="${P}t$RANDOM" t2="${P}u$RANDOM"
  ip link add "$t1" type veth peer name "$t2"
  ip link set "$t1" netns "$P-$ns1"
  ip link set "$t2" netns "$P-$ns2"
  ns "$ns1" ip link set "$t1" name "$if1"
  ns "$ns2" ip link set "$t2" name "$if2"
  ns "$ns1" ip link set "$if1" up
  ns "$ns2" ip link set "$if2" up
}

router() { # $1 ns, $2 lan prefix (10.0.1), $3 wan address, $4 kind, $5 no-stun
  local r="$1" lan="$2" wan="$3" kind="$4" nostun="$5"
  ns "$r" sysctl -qw net.ipv4.ip_forward=1
  ns "$r" ip addr add "$wan/24" dev wan
  ns "$r" ip addr add "$lan.1/24" dev lan
  ns "$r" ip route add default via 203.0.113.254
  local ipt=(ns "$r" iptables)
  "${ipt[@]}" -P FORWARD DROP
  "${ipt[@]}" -A INPUT -i wan -m conntrack --ctstate NEW -j DROP
  if [ "$nostun" = 1 ]; then
    "${ipt[@]}" -A FORWARD -d 203.0.113.100 -j DROP
    "${ipt[@]}" -A FORWARD -d 203.0.113.101 -j DROP
  fi
  "${ipt[@]}" -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  "${ipt[@]}" -A FORWARD -i lan -o wan -j ACCEPT
  case "$kind" in
    cone) "${ipt[@]}" -t nat -A POSTROUTING -o wan -j MASQUERADE ;;
    symmetric) "${ipt[@]}" -t nat -A POSTROUTING -o wan -j MASQUERADE --random-fully ;;
    open)
      "${ipt[@]}" -t nat -A POSTROUTING -o wan -j MASQUERADE
      "${ipt[@]}" -t nat -A PREROUTING -i wan -p udp -j DNAT --to-destination "$lan.2"
      "${ipt[@]}" -A FORWARD -i wan -o lan -p udp -d "$lan.2" -m conntrack --ctstate DNAT -j ACCEPT
      ;;
    *) die "unknown NAT kind $kind" ;;
  esac
}

up() {
  local a=cone b=cone nostun=0 impair=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --a) a="$2"; shift 2 ;;
      --b) b="$2"; shift 2 ;;
      --no-stun-a) nostun=1; shift ;;
      --impair) impair="$2"; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
  for tool in ip iptables tc turnserver; do command -v "$tool" >/dev/null || die "$tool is missing (tools/setup.sh installs it)"; done
  [ "$b" != open ] || die "--b open is not a row"
  down
  mkdir -p "$RUN"
  for n in "${NS[@]}"; do
    ip netns add "$P-$n"
    ns "$n" ip link set lo up
  done
  # The internet: one bridge, every router's WAN and psn-sim's public link on it.
  ns inet ip link add br0 type bridge
  ns inet ip link set br0 up
  ns inet ip addr add 203.0.113.254/24 dev br0
  ns inet ip addr add 203.0.113.100/24 dev br0
  ns inet ip addr add 203.0.113.101/24 dev br0
  link ra/wan inet/ira
  link rb/wan inet/irb
  link b/pub inet/ibpub
  for port in ira irb ibpub; do
    ns inet ip link set "$port" master br0
  done
  link ra/lan a/eth0
  link rb/lan b/eth0
  router ra 10.0.1 203.0.113.1 "$a" "$nostun"
  router rb 10.0.2 203.0.113.2 "$b" 0
  if [ -n "$impair" ]; then
    local ms="${impair%,*}" pct="${impair#*,}"
    local p
    p="$(awk -v p="$pct" 'BEGIN { printf "%.4f", p / 100 }')"
    for dir in "PREROUTING -i wan" "POSTROUTING -o wan"; do
      # shellcheck disable=SC2086
      ns ra iptables -t mangle -A $dir -p udp -m statistic --mode random --probability "$p" -j DROP
      # shellcheck disable=SC2086
      ns ra iptables -t mangle -A $dir -p udp -j NFQUEUE --queue-num 0 --queue-bypass
    done
    ns ra "$(dirname "$0")/netlab_delay.py" 0 "$ms" >"$RUN/delay.log" 2>&1 &
    for _ in $(seq 1 50); do grep -q delaying "$RUN/delay.log" && break; sleep 0.1; done
    grep -q delaying "$RUN/delay.log" || die "the delay did not start: $(cat "$RUN/delay.log")"
  fi
  ns a ip addr add 10.0.1.2/24 dev eth0
  ns a ip route add default via 10.0.1.1
  ns b ip addr add 10.0.2.2/24 dev eth0
  ns b ip route add default via 10.0.2.1
  # psn-sim's rtcBridge: a public address on its own link, used only by what binds it.
  ns b ip addr add 203.0.113.50/32 dev pub
  ns b ip route add 203.0.113.0/24 dev pub src 203.0.113.50 table 50
  ns b ip rule add from 203.0.113.50 lookup 50
  for n in "${NS[@]}"; do
    ns "$n" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  done
  # A real STUN server on two addresses (coturn, STUN only).
  ns inet turnserver -n -S --no-cli --no-tls --no-dtls -L 203.0.113.100 -L 203.0.113.101 \
    -p 3478 --no-stdout-log --simple-log -l "$RUN/turnserver.log" --pidfile "$RUN/turnserver.pid" \
    >/dev/null 2>&1 &
  local i
  for i in $(seq 1 50); do
    if ns inet ss -uln | grep -q '203.0.113.101:3478'; then break; fi
    sleep 0.1
  done
  ns inet ss -uln | grep -q '203.0.113.101:3478' || die "the STUN server did not start ($RUN/turnserver.log)"
  echo "netlab: up (A: $a$([ "$nostun" = 1 ] && echo ', STUN blocked'), B: $b${impair:+, A internet link $impair (ms,% delay,loss each way)})"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down; echo "netlab: down" ;;
  *) die "usage: $0 up [--a cone|open|symmetric] [--b cone|symmetric] [--no-stun-a] [--impair MS,PERCENT] | down" ;;
esac
