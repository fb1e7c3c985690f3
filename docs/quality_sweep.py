"""The quality sweep behind the README's texture and style tables: one run per call, one JSON line out.

    python docs/quality_sweep.py --image ihc --size 64 --iters 50 --seed 0 [levers] --trained FILE.npz

Texture (--task texture, from white noise) or style (--task style, from the content image) on a
random VGG-19 (--net random, seed --seed) or the trained one (--net trained: Gatys et al.), with
the levers the README measures: --layers, --lw (layer weights), --tv (TV prior, calibrated at the
source), --scales "32:40" (coarse stages size:iterations before --size), --levels (image-pyramid
Gram terms), --init noise|meannoise|blurnoise|content, --pooling, --lap K (optimise a K-level
Laplacian-pyramid parametrisation instead of the pixels). The result is scored by engine.judge in
the trained net and in a random net seeded --seed + 1000003, beside white noise and shuffled
pixels (texture) or the unstyled content image (style). Images: sample names, files, or
"sk:NAME" (skimage.data), "sk:NAME_c" for its centre crop (half the width and height).
This is the engine called directly (the tasks add files and logs around the same calls).
"""
import argparse, json, sys, time
from pathlib import Path
import numpy as np
from scipy.optimize import minimize
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.io import image
from engine import metrics
from engine.vgg import VGG19
from engine.objectives import Objective, Term
from engine.optim import lbfgs
from engine.judge import Judge, random_judge_net

TRAINED = None  # --trained
_cache = {}

def load_img(spec, size):
    import skimage.data as d
    if spec.startswith("sk:"):
        name = spec[3:]
        crop = name.endswith("_c")
        a = getattr(d, name[:-2] if crop else name)()
        if a.ndim == 2: a = np.stack([a]*3, -1)
        if crop:
            h, w = a.shape[:2]; a = a[h//4:h*3//4, w//4:w*3//4]
        from PIL import Image
        im = Image.fromarray(a[..., :3].astype(np.uint8))
        w, h = im.size; s = size / max(w, h)
        im = im.resize((max(1, round(w*s)), max(1, round(h*s))), Image.LANCZOS)
        return np.asarray(im, np.float32)
    from tasks.pipeline import inputs
    return inputs.read(spec, size)

def trained():
    if "t" not in _cache:
        _cache["t"] = VGG19.load(TRAINED, device="cpu", pooling="avg")
    return _cache["t"]

def start(kind, h, w, seed, src=None):
    rng = np.random.default_rng(seed)
    if kind == "noise": return rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    if kind == "meannoise":  # noise around the source's mean colour, small amplitude
        return np.clip(src.reshape(-1, 3).mean(0) + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.float32)
    if kind == "blurnoise":
        from scipy import ndimage
        n = rng.uniform(0, 255, (h, w, 3))
        n = np.stack([ndimage.gaussian_filter(n[..., c], 2) for c in range(3)], -1)
        n = (n - n.mean()) / n.std() * 50 + src.reshape(-1, 3).mean(0)
        return np.clip(n, 0, 255).astype(np.float32)
    raise ValueError(kind)

# Laplacian-pyramid parametrisation: x = sum_k up^k(z_k) (nearest), no bounds, clipped at the end
def up(a, k):
    for _ in range(k): a = a.repeat(2, axis=2).repeat(2, axis=3)
    return a

def down_sum(g, k):
    for _ in range(k):
        n, c, h, w = g.shape
        g = g[:, :, :h//2*2, :w//2*2].reshape(n, c, h//2, 2, w//2, 2).sum(axis=(3, 5))
    return g

def optimise_lap(obj, x0, levels, iters, history=10, bounds=None, decay=1.0):
    n, c, h, w = x0.shape
    shapes = [(n, c, h >> k, w >> k) for k in range(levels)]
    sizes = [int(np.prod(s)) for s in shapes]
    def synth(z):
        parts, o = [], 0
        x = np.zeros(x0.shape)
        for k, (s, m) in enumerate(zip(shapes, sizes)):
            x += up(z[o:o+m].reshape(s), k) * (decay ** k); o += m
        return x
    z0 = np.concatenate([x0.ravel().astype(np.float64)] + [np.zeros(m) for m in sizes[1:]])
    def fun(z):
        x = synth(z)
        v, g = obj.value_and_grad(x)
        g = np.asarray(g, np.float64)
        return v, np.concatenate([(down_sum(g, k) * decay ** k).ravel() for k in range(levels)])
    res = minimize(fun, z0, jac=True, method="L-BFGS-B", options={"maxiter": iters, "maxcor": history, "ftol": 0, "gtol": 0})
    x = synth(res.x)
    if bounds is not None:
        x = np.clip(x, bounds[0], bounds[1])
    return x


def optimise(net, build, img0, iters, history=10, mode="caffe", lap=0, decay=1.0):
    x0 = image.preprocess(img0, mode)
    obj = build(x0)
    obj.calibrate(x0)
    lo, hi = image.pixel_bounds(mode); lo, hi = lo.reshape(1,3,1,1), hi.reshape(1,3,1,1)
    if lap:
        x = optimise_lap(obj, x0, lap, iters, history, (lo, hi), decay)
        return image.deprocess(x.astype(np.float32), mode), None
    res = lbfgs(obj, x0, (lo, hi), iters=iters, history=history)
    return image.deprocess(res.x.astype(np.float32), mode), res

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="texture")
    ap.add_argument("--image", default="ihc"); ap.add_argument("--content", default="chelsea")
    ap.add_argument("--size", type=int, default=64); ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--scales", default="")  # e.g. "32:100,64:50" size:iters before final
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--net", default="random")  # random | trained
    ap.add_argument("--layers", default="relu1_1,relu2_1,relu3_1,relu4_1")
    ap.add_argument("--lw", default="")
    ap.add_argument("--tv", type=float, default=0.0)
    ap.add_argument("--alpha", type=float, default=10); ap.add_argument("--beta", type=float, default=1)
    ap.add_argument("--content-layer", default="relu2_2")
    ap.add_argument("--init", default="noise")
    ap.add_argument("--history", type=int, default=10)
    ap.add_argument("--sigma", type=float, default=0.015)
    ap.add_argument("--pooling", default="avg")
    ap.add_argument("--levels", type=int, default=1)
    ap.add_argument("--lap", type=int, default=0)
    ap.add_argument("--decay", type=float, default=1.0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--save", default="")
    ap.add_argument("--trained", required=True, help="a trained VGG-19 .npz (the judge, and --net trained)")
    a = ap.parse_args()
    global TRAINED
    TRAINED = a.trained
    t0 = time.time()
    net = trained() if a.net == "trained" else VGG19.random(seed=a.seed, sigma=a.sigma, pooling=a.pooling, device="cpu")
    layers = a.layers.split(",")
    lw = [float(v) for v in a.lw.split(",")] if a.lw else None
    stages = [tuple(int(v) for v in s.split(":")) for s in a.scales.split(",") if s] + [(a.size, a.iters)]
    img = None
    for size, iters in stages:
        src = load_img(a.image, size)
        h, w = src.shape[:2]
        cont = load_img(a.content, size) if a.task == "style" else None
        if cont is not None: h, w = cont.shape[:2]
        if img is None:
            img0 = cont.copy() if a.init == "content" else start(a.init, h, w, a.seed, src)
        else:
            img0 = image.resize(img, h, w)
        mode = net.preprocessing
        xs = image.preprocess(src, mode)
        def build(x0):
            if a.task == "texture":
                obj = Objective.texture(net, xs, layers, lw, levels=a.levels)
                if a.tv: obj.terms.append(Term("tv", "tv", target=xs, weight=a.tv))
            else:
                obj = Objective.style(net, image.preprocess(cont, mode), [xs], None, a.content_layer, layers,
                                      a.alpha, a.beta, a.tv, levels=a.levels)
            return obj
        img, res = optimise(net, build, img0, iters, a.history, mode, a.lap, a.decay)
    src = load_img(a.image, a.size)
    cont = load_img(a.content, a.size) if a.task == "style" else None
    out = {"args": vars(a), "seconds": round(time.time() - t0, 1)}
    base = {"result": img}
    if a.task == "texture":
        base["noise"] = metrics.white_noise_like(src, a.seed); base["shuffled"] = metrics.shuffled_pixels(src, a.seed)
    else:
        base["content"] = cont
    for jname, jnet in (("trained", trained()), ("random", random_judge_net(a.seed + 1000003, VGG19.random(0, device="cpu")))):
        j = Judge(jnet, style=[src], content=cont)
        sc = j.score_all(base)
        out[jname] = {k: {"style": v["style"]["total"], **({"content": v["content"]} if "content" in v else {})}
                      for k, v in sc.items()}
        out[jname + "_layers"] = {k: round(v, 3) for k, v in sc["result"]["style"].items()}
    if a.save:
        image.save_png(a.save, img)
    print(json.dumps(out))

main()
