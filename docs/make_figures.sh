#!/usr/bin/env bash
# Remake the README's inversion picture on the default network with the default options:
#   bash docs/make_figures.sh
# The texture and style rows (docs/levers/*.png) and their figures are made by the commands
# written under each table of docs/levers.md (bench/texture_levers.py, bench/style_levers.py),
# which need a trained VGG-19 (`ranvgg weights convert`, docs/network.md).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m tasks.invert --image astronaut --layer pool3 --device cpu --out docs/invert_pool3.png
