"""The checks of notebook 09 · EMMA."""
from __future__ import annotations

import torch

from alignlib.notebooks.exercises.core import (as_number, call_answer, compare, compare_number, exercise,
                                               judge_prediction, seeded)


@exercise
def check_patchify(answer) -> str:
    """``patchify(images (B, H, W), patch_size) -> (B, P, patch_size^2)`` against
    :func:`alignlib.models.emma.patchify` (raster order of patches and of pixels inside them)."""
    from alignlib.models import emma

    generator = seeded(17)
    for case, (shape, size) in {"2 images of 8 x 12, patches of 4": ((2, 8, 12), 4),
                                "1 image of 16 x 16, patches of 8": ((1, 16, 16), 8)}.items():
        images = torch.rand(shape, generator=generator, dtype=torch.float64)
        got = call_answer(answer, case, images, size)
        expected = emma.patchify(images, size)
        batch, height, width = shape
        grid = images.reshape(batch, height // size, size, width // size, size)
        mistakes = {
            "a plain reshape: each 'patch' is a run of consecutive pixels along image rows, not a square":
                images.reshape(batch, -1, size * size),
            "the patches are in column order: raster order runs along a row of patches first":
                grid.permute(0, 3, 1, 2, 4).reshape(batch, -1, size * size),
            "the pixels inside each patch are transposed: raster order inside a patch runs along its rows":
                grid.permute(0, 1, 3, 4, 2).reshape(batch, -1, size * size),
        }
        compare(got, expected, case, mistakes, axes=" (B, P, patch_size^2)")
    return "matches alignlib.models.emma.patchify on square and oblong images"


@exercise
def check_multi_scale_fusion(answer) -> str:
    """``multi_scale_fusion(states [L x (B, P, d)], weight (d, L d), bias (d,)) -> (B, P, d)``
    against :class:`alignlib.models.emma.MultiScaleFusion` with that projection."""
    from alignlib.models.emma import MultiScaleFusion

    generator = seeded(18)
    batch, patches, width, sources = 2, 4, 6, 3
    fusion = MultiScaleFusion(width, sources).double()
    with torch.no_grad():
        fusion.proj.weight.copy_(torch.randn(width, sources * width, generator=generator, dtype=torch.float64))
        fusion.proj.bias.copy_(torch.randn(width, generator=generator, dtype=torch.float64))
    states = [scale * torch.randn(batch, patches, width, generator=generator, dtype=torch.float64) + offset
              for scale, offset in ((0.5, 0.0), (1.0, 0.5), (10.0, -2.0))]
    weight, bias = fusion.proj.weight.detach(), fusion.proj.bias.detach()
    case = f"{sources} states of shape ({batch}, {patches}, {width})"
    got = call_answer(answer, case, states, weight, bias)
    with torch.no_grad():
        expected = fusion(states)

    def fuse(normalise):
        return torch.cat([normalise(s) for s in states], dim=-1) @ weight.T + bias

    def centred(s):
        s = s - s.mean(-1, keepdim=True)
        return s / s.pow(2).mean(-1, keepdim=True).sqrt()

    mistakes = {
        "the states are not normalised: RMSNorm divides each token's state by its root mean square": fuse(lambda s: s),
        "the mean is subtracted (a LayerNorm): RMSNorm only divides by the root mean square, it does not centre":
            fuse(centred),
        "normalised over the wrong axis: RMSNorm takes the root mean square over each token's d features":
            fuse(lambda s: s / s.pow(2).mean(-2, keepdim=True).sqrt()),
    }
    compare(got, expected, case, mistakes, axes=" (B, P, d)", rtol=1e-4)  # any small eps of the norm passes
    return "matches alignlib.models.emma.MultiScaleFusion"


@exercise
def check_probe_r2(answer) -> str:
    """``probe_r2(train_states (N, d), train_pixels (N, k), test_states, test_pixels) -> float``: a
    least-squares probe with an intercept, scored by pooled R^2 on the test set, against
    scikit-learn's ``LinearRegression`` and ``r2_score(..., multioutput="variance_weighted")``."""
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    generator = seeded(19)
    width, pixels = 6, 5
    mixing = torch.randn(width, pixels, generator=generator, dtype=torch.float64) * torch.tensor([0.2, 0.5, 1.0, 2.0, 4.0])

    def draw(n):
        states = torch.randn(n, width, generator=generator, dtype=torch.float64) + 1.0
        return states, states @ mixing + 3.0 + torch.randn(n, pixels, generator=generator, dtype=torch.float64)

    (train_x, train_y), (test_x, test_y) = draw(300), draw(200)
    case = "300 training and 200 test tokens, 6 features, 5 pixels"
    got = as_number(call_answer(answer, case, train_x, train_y, test_x, test_y), case)
    fitted = LinearRegression().fit(train_x.numpy(), train_y.numpy())
    predicted = fitted.predict(test_x.numpy())
    no_intercept = LinearRegression(fit_intercept=False).fit(train_x.numpy(), train_y.numpy()).predict(test_x.numpy())
    mistakes = {
        "no intercept: the pixels have a mean the states do not explain; fit a bias too (or centre both sides)":
            r2_score(test_y.numpy(), no_intercept, multioutput="variance_weighted"),
        "R^2 averaged over pixels with equal weights: pool the squared errors over all pixels (variance_weighted)":
            r2_score(test_y.numpy(), predicted, multioutput="uniform_average"),
        "scored on the training tokens: score the probe on the held-out ones":
            r2_score(train_y.numpy(), fitted.predict(train_x.numpy()), multioutput="variance_weighted"),
    }
    compare_number(got, r2_score(test_y.numpy(), predicted, multioutput="variance_weighted"), case, mistakes)
    return "matches scikit-learn's LinearRegression scored by r2_score(multioutput='variance_weighted')"


@exercise
def check_answers_unchanged_by_padding(prediction, gap: float) -> str:
    """A prediction (True or False): the trained model's answers do not change when every question
    gets more padding. Tested by the notebook's measurement ``gap``, the largest change of a logit
    (unchanged below 1e-5)."""
    unchanged = gap < 1e-5
    why = ("Causality is a property of the architecture, not of the weights: the answer position reads only "
           "earlier positions, and the padding comes after it" if unchanged else "")
    return judge_prediction(prediction, unchanged, f"the largest change of a logit is {gap:.2e}", why)
