#!/usr/bin/env bash
# Regenerate the pictures in the README (CPU, about 15 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
# These pictures were made on the plain random net of seed 0, before ranVGG became the default
# network; NET keeps them reproducible. NET= docs/make_figures.sh makes them on the default (ranVGG).
NET=${NET---net random}
# the first also makes the README's loss plot (needs matplotlib) and contact sheet
python -m tasks.invert --image astronaut --layer pool3 --device cpu $NET --out docs/invert_pool3.png --save-every 40
rm -f docs/invert_pool3_iter*.png
for layer in relu1_1 pool1 pool2 pool4 pool5; do
  python -m tasks.invert --image astronaut --layer $layer --device cpu $NET --out docs/invert_$layer.png --print-every 0
done
python -m tasks.invert --image astronaut --layer pool5 --tv-weight 0.01 --device cpu $NET --out docs/invert_pool5_tv.png --print-every 0
python -m tasks.texture --image gravel --device cpu $NET --out docs/texture_gravel.png
python -m tasks.texture --image ihc --device cpu $NET --out docs/texture_ihc.png --print-every 0
python -m tasks.style --content chelsea --style ihc --device cpu $NET --out docs/style_chelsea_ihc.png
python -m tasks.style --content chelsea --style ihc --device cpu $NET --content-weight 100 --style-weight 1 \
  --tv-weight 1000 --out docs/style_paper_ratio.png --print-every 0
# one loss plot is shown in the README; the others would only clutter docs/
find docs -name '*_loss.png' ! -name invert_pool3_loss.png -delete
# The seed study (README, "The network"): plain vs ranVGG, seeds 0-9; long (see its docstring).
python docs/seed_study.py
