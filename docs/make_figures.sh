#!/usr/bin/env bash
# Regenerate the pictures in the README (CPU, about 15 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
# the first also makes the README's loss plot (needs matplotlib) and contact sheet
python -m tasks.invert --image astronaut --layer pool3 --device cpu --out docs/invert_pool3.png --save-every 40
rm -f docs/invert_pool3_iter*.png
for layer in relu1_1 pool1 pool2 pool4 pool5; do
  python -m tasks.invert --image astronaut --layer $layer --device cpu --out docs/invert_$layer.png --print-every 0
done
python -m tasks.invert --image astronaut --layer pool5 --tv-weight 0.01 --device cpu --out docs/invert_pool5_tv.png --print-every 0
python -m tasks.texture --image gravel --device cpu --out docs/texture_gravel.png
python -m tasks.texture --image ihc --device cpu --out docs/texture_ihc.png --print-every 0
python -m tasks.style --content chelsea --style ihc --device cpu --out docs/style_chelsea_ihc.png
python -m tasks.style --content chelsea --style ihc --device cpu --content-weight 100 --style-weight 1 \
  --tv-weight 1000 --out docs/style_paper_ratio.png --print-every 0
python -m tasks.stack --image astronaut --device cpu --out /tmp/stacked.npz --log docs/stacked_astronaut.json --print-every 0
# one loss plot is shown in the README; the others would only clutter docs/
find docs -name '*_loss.png' ! -name invert_pool3_loss.png -delete
