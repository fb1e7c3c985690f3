"""The README's Python examples run as written (with a sample image and a tiny budget)."""
import re
from pathlib import Path

from engine import image

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
# the weight-conversion recipe needs PyTorch and the user's own file: not run here
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "import torch" not in b]


def test_readme_has_the_api_examples():
    assert len(BLOCKS) >= 2 and "VGG19.random" in BLOCKS[0] and "invert.run" in BLOCKS[1]


def test_readme_python_examples_run(tmp_path, monkeypatch):
    from tasks import invert, style, texture

    monkeypatch.chdir(tmp_path)
    for mod in (invert, style, texture):  # a tiny budget; everything else as written
        monkeypatch.setattr(mod, "PARSER", mod._parser())
        mod.PARSER.set_defaults(iters=2, size=32, print_every=0, out=str(tmp_path / f"{mod.__name__}.png"))
    for block in BLOCKS:
        code = (block.replace('"photo.jpg"', repr(str(image.sample_path("coffee"))))
                .replace("size=128", "size=48").replace("iters=200", "iters=2"))
        exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "out.png").exists() and (tmp_path / "weights.npz").exists()
