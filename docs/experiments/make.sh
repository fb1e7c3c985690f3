#!/bin/sh
# The figures of README's "Experiments" section, at the smallest settings that still show
# something (48 px, 50 iterations): they were made on a 2-core CPU shared with other jobs (load
# average about 25), where one 64 px / 100 iteration inversion took up to 6 minutes.
# Run from the repository root: sh docs/experiments/make.sh TRAINED.npz [a|b|all]; results go to
# out/experiments/FIG/; the figures, results.csv, curves.csv and summary.md are copied here.
set -e
T=${1:?give the trained VGG-19 .npz (python -m tasks.weights convert ...)}
E="nice -n 10 python -m tasks.experiments"
S="--size 48 --iters 50"
run() { fig=$1; shift; $E $fig --out out/experiments/$fig $S "$@"; mkdir -p docs/experiments/$fig;
        cp out/experiments/$fig/*.png out/experiments/$fig/results.csv out/experiments/$fig/summary.md docs/experiments/$fig/;
        cp out/experiments/$fig/curves.csv docs/experiments/$fig/ 2>/dev/null || true; }
case "${2:-all}" in
a|all)
  run fig1 --nets random --trained "$T"
  run fig4 --nets random --trained "$T"
  run fig5 --nets random --image gravel --trained "$T"
  run fig6 --nets random --styles ihc --trained "$T" ;;
esac
case "${2:-all}" in
b|all)
  run arch --nets random --seeds 0-1 --trained "$T"
  run fig3 --nets ranvgg,random --seeds 0-4 --layers pool3 --trained "$T" ;;
esac
