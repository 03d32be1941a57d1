#!/usr/bin/env bash
# Two checkouts of this project, the same bench.load burst, alternately (A B A B ...), at a raised
# priority so that other work on the machine takes less from either side. Each checkout needs its
# own .venv (a link to one is enough). Prints each run's table rows.
#
#   bench/side_by_side.sh A_DIR B_DIR [ROUNDS] [bench.load options ...]
#   bench/side_by_side.sh ../main-before . 2 --database-url postgresql://postgres@127.0.0.1:5432/bench
set -euo pipefail
a=$1 b=$2 rounds=${3:-2}
shift $(( $# < 3 ? $# : 3 ))
for i in $(seq "$rounds"); do
  for tree in "$a" "$b"; do
    echo "== $tree, run $i, $(git -C "$tree" rev-parse --short HEAD), load $(cut -d' ' -f1 /proc/loadavg)"
    (cd "$tree" && nice -n -10 .venv/bin/python -m bench.load --streams 100,200 --rounds 1 --ramp 0 \
      --answer-words 200 --chunk-words 5 --tokens-per-second 250 "$@" 2>/dev/null | grep '^| [a-z]' | grep -v '^| config')
  done
done
