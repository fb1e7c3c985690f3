"""The README's Python examples run as written (with a sample image and a tiny budget)."""
import re
from pathlib import Path

from engine.io import image

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# the weight-conversion recipe needs PyTorch and the user's own file: not run here
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "import torch" not in b]


def test_readme_has_the_api_examples():
    assert len(BLOCKS) >= 2 and "VGG19.random" in BLOCKS[0] and "invert.run" in BLOCKS[1]


def test_readme_python_examples_run(tmp_path, monkeypatch):
    from tasks import invert, style, texture

    monkeypatch.chdir(tmp_path)
    for mod in (invert, style, texture):  # a tiny budget; everything else as written
        monkeypatch.setattr(mod, "PARSER", mod._parser())
        mod.PARSER.set_defaults(iters=2, size=32, print_every=0)
    for block in BLOCKS:
        code = (block.replace('"photo.jpg"', repr(str(image.sample_path("coffee"))))
                .replace("size=128", "size=48").replace("iters=200", "iters=2"))
        exec(compile(code, "README.md", "exec"), {})
    written = {p.name for p in tmp_path.iterdir()} - {"tex_loss.png"}  # that one needs matplotlib
    # the API writes what it is asked to, and nothing else (no out/ folder)
    assert written == {"out.png", "tex.png", "tex.json"}


def test_ci_runs_exactly_the_readme_test_command():
    first = re.search(r"```bash\n(.*?)```", README, re.S).group(1).splitlines()
    assert first[0].startswith("pip install . && ranvgg invert")  # the plain CPU install, then the job
    assert first[1] in (ROOT / ".ci" / "run").read_text().splitlines()
    assert first[1] == 'python -m pip install ".[test]" && python -m pytest'


def test_readme_cites_only_files_in_the_repository():
    assert "SPEC" not in README
    cited = set(re.findall(r"(?:\(|`)((?:docs|tasks|engine|kernels|bench|tests)/[\w./-]+?\.\w+)", README))
    assert "docs/method.md" in cited and len(cited) > 10
    missing = sorted(c for c in cited if not (ROOT / c).exists() and "*" not in c)
    assert missing == []
