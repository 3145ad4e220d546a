#!/usr/bin/env bash
# The main job: install netlab, build the final topology of docs/tutorial.md with one `netlab apply`, and
# show that ns0, ns1 and ns2 reach each other. The topology is LEFT RUNNING so that you can explore it
# (`ip netns exec ns1 bash`); remove it with `.venv/bin/netlab destroy topologies/seed.yaml`.
# Run as root from the repository's top folder.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ping >/dev/null || { apt-get update -qq && apt-get install -y -qq iputils-ping iproute2 >/dev/null; }
[ -x .venv/bin/netlab ] || { python3 -m venv .venv && .venv/bin/pip install -q .; }
.venv/bin/netlab apply topologies/seed.yaml
.venv/bin/netlab diff topologies/seed.yaml
declare -A addr=([ns0]=10.0.0.1 [ns1]=10.0.0.2 [ns2]=10.0.0.3)
fail=0
for src in ns0 ns1 ns2; do
  for dst in ns0 ns1 ns2; do
    [ "$src" = "$dst" ] && continue
    if ip netns exec "$src" ping -c 1 -W 2 "${addr[$dst]}" >/dev/null; then
      echo "ping $src -> $dst (${addr[$dst]}): ok"
    else
      echo "ping $src -> $dst (${addr[$dst]}): FAILED"; fail=1
    fi
  done
done
echo "The topology is left running. Remove it with: .venv/bin/netlab destroy topologies/seed.yaml"
exit $fail
