"""Scores of texture and style results in networks other than the one optimised, for the log.

``--judge-weights FILE.npz`` adds a trained VGG-19 (the paper's comparison network) beside the
independently seeded random net that is always used. Every judge also scores the free
baselines a result must beat (white noise, shuffled pixels; for style the unstyled content
image), so that each number in the log has its yardstick next to it.
"""
from __future__ import annotations

from engine import judge as judging
from engine.vgg import VGG19

from ..cli.console import say

RANDOM_JUDGE_SEED_OFFSET = 1000003  # the same offset as texture's check net: never the optimised draw


def add_options(ap) -> None:
    g = ap.add_argument_group("judging (scores in networks other than the one optimised)")
    g.add_argument("--judge-weights", metavar="FILE.npz", default=None,
                   help="also score the result in this (trained) VGG-19: Gram error over "
                        f"{','.join(judging.STYLE_LAYERS)} and content error at {judging.CONTENT_LAYER}, "
                        "relative, against the baselines (default: only an independent random net)")


def judges(a, net: VGG19, style=None, content=None, blend=None, random_net=None) -> dict:
    """{name: Judge}: "random" (seed + offset, or ``random_net`` when the task already built
    that net), and "trained" when --judge-weights is given.

    ``style`` / ``content``: images (H, W, 3) in [0, 255], as the task read them."""
    nets = {"random": random_net or random_net_for(a, net)}
    if a.judge_weights:
        nets["trained"] = VGG19.load(a.judge_weights, device=net.device, pooling=a.pooling or "avg")
    return {k: judging.Judge(n, style=style, content=content, blend=blend) for k, n in nets.items()}


def random_net_for(a, net: VGG19) -> VGG19:
    """The random judge: seed --seed + offset, --sigma, --pooling (avg unless given)."""
    return judging.random_judge_net(a.seed + RANDOM_JUDGE_SEED_OFFSET, a.sigma, a.pooling or "avg", net.device)


def score(judges_: dict, images: dict) -> dict:
    """{judge name: {image name: scores}} for the named images (result and baselines)."""
    return {k: j.score_all(images) for k, j in judges_.items()}


def report(scores: dict) -> None:
    """One line per judge: the result's scores and each baseline's."""
    for name, per_image in scores.items():
        rest = "; ".join(f"{k} {judging.summary(v)}" for k, v in per_image.items() if k != "result")
        say(f"same-image score in the {name} net (against the source itself, what Gatys et al. minimise; "
            f"a copy of the source would win it; --held-out judges against parts never seen): result {judging.summary(per_image['result'])} ({rest})")

