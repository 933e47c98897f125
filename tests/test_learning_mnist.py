"""Do the convolutional architectures learn? End-to-end checks on a subset of real MNIST.

Each slow test trains an architecture with a loss it is meant for on the first
:data:`MNIST_LIMIT` training images and judges 1000 samples with ganframe's shipped MNIST
classifier (``tests/judges.py``: the criterion of ``test_learning.py``, 8+ of 10 classes
found, shares near uniform, diverse overall and per class; a conditional one must also
make the class asked for: dcgan >= 80% of the time for every class, resnet >= 40%). Skipped without a local MNIST.
"""

from __future__ import annotations

from typing import Any

import pytest

from datafiles import needs_mnist
from judges import (
    CLASS_LABELS,
    KNOWN_SAMPLE_SETS,
    MIN_CLASS_ACCURACY,
    MNIST_JUDGE_IMAGES,
    N_SAMPLES,
    SAMPLE_SEED,
    SEED,
    Judge,
    load_data,
    mnist_judge,
    sample,
    train,
    untrained_generator,
)

pytestmark = needs_mnist

#: Training images of every run: enough that 1000 steps of 64 do not memorise them.
MNIST_LIMIT = 10000

#: ``dcgan`` at 28x28 with the default non-saturating loss, its channels a quarter of the default.
DCGAN = {
    "arch": "dcgan",
    "arch_options": {"base_channels": 16, "latent_dim": 32},
    "data": "mnist",
    "data_options": {"limit": MNIST_LIMIT},
    "batch_size": 64,
    "seed": SEED,
    "jit_compile": False,  # see test_learning.LOSS_RUNS
}

#: ``resnet`` (SNGAN: spectral norm in D) with the hinge loss, at 16x16 (``resize`` = 16): at 32x32
#: (``pad_to`` = 32) a step costs four times as much (measured below), more than the CI budget holds.
RESNET = {
    "arch": "resnet",
    "arch_options": {"g_channels": 16, "d_channels": 16, "latent_dim": 32, "spectral_norm": True},
    "data": "mnist",
    "data_options": {"limit": MNIST_LIMIT, "resize": 16},
    "loss": "hinge",
    "batch_size": 32,
    "seed": SEED,
    "jit_compile": False,
}

#: Train steps, measured on 2 CPU cores shared with other jobs (seeds 0 and 1; found / smallest
#: found share / KL from uniform / diversity / smallest per-class diversity):
#:   dcgan   150-450: 0 found (fail)   600: 5 found (fails), 9/.022/.25/.71/.68   800: 9/.023/.25/.76/.70, 9/.029/.26/.84/.83
#:          1000: 8/.035/.27/.88/.85, 10/.027/.29/.91/.88   1200: 10/.025/.23/.93/.87, 10/.023/.30/.96/.89
#:          1400: 10/.020/.25/.95/.90, 10/.027/.28/.98/.98;  ~80 ms of CPU time per step, ~100 s in all at 1200
#: Its class shares stay the most skewed of all the learning runs (KL 0.23-0.30, 0.00-0.09 for the
#: dense ones): hence MAX_KL_FROM_UNIFORM = 0.4, not lower.
DCGAN_STEPS = 1200
#:   resnet  seed 0: 1: 1 found   200: 10/.024/.22/1.01   400: 10/.042/.12/.95   600: 9/.025/.23/.94/.84   800: 10/.021/.28/1.02
#:           seed 1: 200: 4 found, 300: 8/.020/.65, 400: 8/.031/.43 (fail)          600: 10/.031/.25/.93/.84
#:           seed 2: 200: 8/.020/.76, 300: 7 found (fail)   400: 9/.040/.19/1.19      600: 8/.059/.23/.90/.86
#:           ~0.11 s of CPU time per step, ~80 s in all at 600. With SAGAN's optimizers (D 4e-4, G 1e-4,
#:           beta = (0, 0.9)) worse: seed 1 still 0.35-0.48 from uniform at 400-800 steps. At 32x32
#:           (pad_to = 32, seed 0): 300: 8/.037/.34, 450: 8/.038/.26/.75, 600: 8/.036/.24/1.01 at ~4x the time.
RESNET_STEPS = 600

#: ``dcgan`` conditional (G given the one-hot class, projection D), G's weights averaged as in the
#: conditional dense test, its channels half the default: at a quarter (16), the per-class
#: accuracy climbs too slowly for CI. Measured (seeds 0 and 1; mean / lowest class accuracy,
#: lowest per-class diversity):
#:   base 32   1200: .86/.66, .81/.64   1500: .91/.74, .88/.71   1800: .93/.78, .92/.85
#:             2100: .96/.85, .95/.81   2400: .97/.88, .96/.87, per-class diversity >= 0.91
#:   base 16   1500: .85/.57, .79/.60   1800: .83/.70, .82/.67   2100: .79/.61, .83/.69   3000 (seed 0): .87/.72
#: The weakest classes are 2, 8 and 9. Base 16 on [-1, 1] data with tanh was no better (1800: .81/.56, .88/.73).
#: With a learned class embedding in G instead of the one-hot code (ganframe's earlier conditioning),
#: base 16 collapsed within each class: one image per class, per-class diversity 0.13-0.36, whole
#: classes drawn as another digit (accuracy 0.00-0.06 for some class at 600-1800 steps).
CONDITIONAL_DCGAN = {**DCGAN, "arch_options": {**DCGAN["arch_options"], "base_channels": 32, "conditional": True},
                     "ema": 0.99}
CONDITIONAL_DCGAN_STEPS = 2400

#: ``resnet`` conditional, the networks of RESNET, G's weights averaged. Measured (seeds 0 and 1;
#: mean / lowest class accuracy):
#:   1200: .44/.29, .23/.05   1500: .69/.35, .40/.23   1800: .80/.51, .64/.32   2100: .81/.64, .77/.49
#:   2400: .78/.58, .84/.60; ~0.11 s of CPU time per step. It levels off below the 0.8 every class
#: must reach in the dcgan test (the 16x16 judge errs more too: 0.975 on real images), so its bound
#: is lower, CONDITIONAL_RESNET_MIN_ACCURACY: it guards the fix that made it learn at all. With D's
#: class projection on the sum-pooled features (Miyato & Koyama's) instead of the flattened last
#: map: mean .07-.11 at 600 steps, .14-.16 at 1800 (chance: .10), whatever the loss (hinge,
#: non-saturating), spectral norm on or off, or a learned embedding in G (.23 at 1200).
CONDITIONAL_RESNET = {**RESNET, "arch_options": {**RESNET["arch_options"], "conditional": True}, "ema": 0.99}
CONDITIONAL_RESNET_STEPS = 2400
CONDITIONAL_RESNET_MIN_ACCURACY = 0.4


@pytest.fixture(scope="module")
def judge() -> Judge:
    return mnist_judge()


@pytest.fixture(scope="module")
def judge16() -> Judge:
    return mnist_judge(resize=16)


@pytest.mark.parametrize("name", list(KNOWN_SAMPLE_SETS))
def test_criterion_on_known_sample_sets(judge: Judge, name: str) -> None:
    """The criterion passes real MNIST and fails collapsed or skewed sets made of it."""
    make, passes = KNOWN_SAMPLE_SETS[name]
    data = load_data("mnist", split="test", limit=MNIST_JUDGE_IMAGES)
    coverage = judge.coverage(make(data.images, data.labels))
    assert (not coverage.failures()) == passes, f"{name}: {coverage}"


@pytest.mark.parametrize("options", [{"pad_to": 32}, {"resize": 16}], ids=["pad_to=32", "resize=16"])
def test_the_judge_takes_real_images_as_the_runs_see_them(options: dict[str, Any]) -> None:
    """Padded images are cropped back, resized ones resized up: real MNIST still passes, at its own spread."""
    judge = mnist_judge(**options)
    data = load_data("mnist", split="test", limit=MNIST_JUDGE_IMAGES, **options)
    coverage = judge.coverage(data.images)
    assert not coverage.failures() and abs(coverage.diversity - 1) < 1e-6, coverage
    assert judge.class_accuracy(data.images, data.labels).per_class.min() > 0.9


@pytest.mark.parametrize(("config", "judge_name"), [(DCGAN, "judge"), (RESNET, "judge16")], ids=["dcgan", "resnet"])
def test_untrained_generators_fail_the_criterion(config: dict[str, Any], judge_name: str, request) -> None:
    data = load_data("mnist", **{**config["data_options"], "limit": 10})  # only its spec is needed
    generator, latent_dim = untrained_generator(config, data.spec)
    coverage = request.getfixturevalue(judge_name).coverage(sample(generator, latent_dim))
    assert coverage.failures(), f"untrained {config['arch']} G passes: {coverage}"


@pytest.mark.parametrize(("config", "judge_name"), [(CONDITIONAL_DCGAN, "judge"), (CONDITIONAL_RESNET, "judge16")],
                         ids=["dcgan", "resnet"])
def test_untrained_conditional_generators_fail_the_criterion(config: dict[str, Any], judge_name: str,
                                                             request) -> None:
    data = load_data("mnist", **{**config["data_options"], "limit": 10})
    generator, latent_dim = untrained_generator(config, data.spec)
    accuracy = request.getfixturevalue(judge_name).class_accuracy(sample(generator, latent_dim, labels=CLASS_LABELS),
                                                                  CLASS_LABELS)
    assert accuracy.failures(), f"untrained conditional {config['arch']} G passes: {accuracy}"


@pytest.mark.slow
@pytest.mark.parametrize(("config", "steps", "judge_name"), [(DCGAN, DCGAN_STEPS, "judge"), (RESNET, RESNET_STEPS, "judge16")],
                         ids=["dcgan", "resnet-hinge"])
def test_architecture_covers_the_mnist_classes(config: dict[str, Any], steps: int, judge_name: str, request,
                                               tmp_path) -> None:
    run = train({**config, "steps": steps}, tmp_path)
    coverage = request.getfixturevalue(judge_name).coverage(run.generate(N_SAMPLES, seed=SAMPLE_SEED))
    print(f"{config['arch']} after {steps} steps: {coverage}")
    assert not coverage.failures(), f"{config['arch']} after {steps} steps: {coverage}"


@pytest.mark.slow
@pytest.mark.parametrize(("config", "steps", "minimum", "judge_name"), [
    (CONDITIONAL_DCGAN, CONDITIONAL_DCGAN_STEPS, MIN_CLASS_ACCURACY, "judge"),
    (CONDITIONAL_RESNET, CONDITIONAL_RESNET_STEPS, CONDITIONAL_RESNET_MIN_ACCURACY, "judge16"),
], ids=["dcgan", "resnet-hinge"])
def test_conditional_architecture_generates_the_class_asked_for(config: dict[str, Any], steps: int, minimum: float,
                                                                judge_name: str, request, tmp_path) -> None:
    run = train({**config, "steps": steps}, tmp_path)
    accuracy, coverage = request.getfixturevalue(judge_name).conditional(run)
    print(f"conditional {config['arch']} after {steps} steps: {accuracy}; {coverage}")
    assert not accuracy.failures(minimum), f"conditional {config['arch']} after {steps} steps: {accuracy}"
    assert not coverage.failures(), f"conditional {config['arch']} after {steps} steps: {coverage}"
