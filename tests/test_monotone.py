"""Monotone alignment against brute force: every monotone path enumerated by a Python loop.
On CPU the recursions run in C++ (``alignlib/ssm/kernels/monotone.cpp``); the PyTorch loops they
replace (other devices, no compiler) must give the same tables."""
import itertools
import warnings

import numpy as np
import pytest
import torch

from alignlib.align import monotone, ot
from alignlib.data import NO_WORD, MMSADataset, collate, load_mmsa
from alignlib.ssm import kernels

SAMPLE = "data_samples/synthetic_tiny.pkl"


def all_paths(n_frames: int, n_words: int):
    """Every monotone path: first frame on word 0, last on word W-1, steps of 0 or 1."""
    for steps in itertools.product((0, 1), repeat=n_frames - 1):
        if sum(steps) == n_words - 1:
            yield np.concatenate([[0], np.cumsum(steps)])


def brute_force(scores, frame_mask, word_mask):
    """``(log Z, posterior, best path)`` of one clip, by enumeration."""
    frames = frame_mask.nonzero().flatten().tolist()
    words = word_mask.nonzero().flatten().tolist()
    paths = list(all_paths(len(frames), len(words)))
    totals = torch.stack([sum(scores[f, words[w]] for f, w in zip(frames, path)) for path in paths])
    log_z = torch.logsumexp(totals, 0)
    post = torch.zeros_like(scores)
    for path, total in zip(paths, totals):
        for f, w in zip(frames, path):
            post[f, words[w]] += (total - log_z).exp()
    best = torch.full((scores.shape[0],), -1)
    for f, w in zip(frames, paths[int(totals.argmax())]):
        best[f] = words[w]
    return log_z, post, best


@pytest.mark.parametrize("seed", range(8))
def test_recursions_match_enumeration_with_padding_anywhere(seed):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(3, 8, 5, generator=generator, dtype=torch.float64)
    frame_mask = torch.rand(3, 8, generator=generator) > 0.3
    word_mask = torch.rand(3, 5, generator=generator) > 0.3
    word_mask[:, 2] = True
    frame_mask[:, :5] |= torch.rand(3, 5, generator=generator) > 0.0  # at least 5 real frames >= words
    log_z = monotone.log_partition(scores, frame_mask, word_mask)
    post = monotone.posterior(scores, frame_mask, word_mask)
    best = monotone.best_path(scores, frame_mask, word_mask)
    for b in range(3):
        expected_z, expected_post, expected_best = brute_force(scores[b], frame_mask[b], word_mask[b])
        assert torch.allclose(log_z[b], expected_z)
        assert torch.allclose(post[b], expected_post, atol=1e-10)
        assert torch.equal(best[b], expected_best)


def all_paths_with_no_word(n_frames: int, n_words: int):
    """Every monotone path through the words and a "no word" state (CTC's blank) before, between and
    after them: states 0 .. 2W (blank 2j before word j, word j at 2j + 1), starting on state 0 or 1,
    ending on 2W - 1 or 2W, steps of 0 or 1, or 2 from a word to the next word (passing the blank)."""
    for steps in itertools.product((0, 1, 2), repeat=n_frames - 1):
        for first in (0, 1):
            states = np.concatenate([[first], first + np.cumsum(steps, dtype=int)])
            jumps = np.flatnonzero(np.asarray(steps) == 2)
            if states[-1] in (2 * n_words - 1, 2 * n_words) and all(states[k + 1] % 2 == 1 for k in jumps):
                yield states


def brute_force_with_no_word(scores, no_word, frame_mask, word_mask):
    """``(log Z, word posterior, no-word posterior, best path)`` of one clip with a "no word" state."""
    frames = frame_mask.nonzero().flatten().tolist()
    words = word_mask.nonzero().flatten().tolist()
    paths = list(all_paths_with_no_word(len(frames), len(words)))
    def score(f, state):
        return scores[f, words[state // 2]] if state % 2 else no_word[f]
    totals = torch.stack([sum(score(f, state) for f, state in zip(frames, path)) for path in paths])
    log_z = torch.logsumexp(totals, 0)
    post, blank = torch.zeros_like(scores), torch.zeros_like(no_word)
    for path, total in zip(paths, totals):
        for f, state in zip(frames, path):
            if state % 2:
                post[f, words[state // 2]] += (total - log_z).exp()
            else:
                blank[f] += (total - log_z).exp()
    best = torch.full((scores.shape[0],), -1)
    for f, state in zip(frames, paths[int(totals.argmax())]):
        best[f] = words[state // 2] if state % 2 else NO_WORD
    return log_z, post, blank, best


def test_a_best_path_may_end_in_a_pause_with_every_word_real():
    """The last "no word" state (after the last word) has no word of its own: a clip whose every word
    is real and whose last frames are a pause ends there, as the enumeration says."""
    scores = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    no_word = torch.full((2, 6), -5.0, dtype=torch.float64)
    no_word[:, -2:] = 5.0  # the last two frames: a pause
    frames, words = torch.ones(2, 6, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool)
    best = monotone.best_path(scores, frames, words, no_word)
    for b in range(2):
        assert torch.equal(best[b], brute_force_with_no_word(scores[b], no_word[b], frames[b], words[b])[3])
    assert (best[:, -2:] == NO_WORD).all()


@pytest.mark.parametrize("seed", range(6))
def test_recursions_with_a_no_word_state_match_enumeration(seed):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(3, 7, 4, generator=generator, dtype=torch.float64)
    no_word = torch.randn(3, 7, generator=generator, dtype=torch.float64)
    frame_mask = torch.rand(3, 7, generator=generator) > 0.3
    word_mask = torch.rand(3, 4, generator=generator) > 0.3
    word_mask[:, 1] = True
    frame_mask[:, :4] = True
    log_z = monotone.log_partition(scores, frame_mask, word_mask, no_word)
    post, blank = monotone.posterior(scores, frame_mask, word_mask, no_word)
    best = monotone.best_path(scores, frame_mask, word_mask, no_word)
    for b in range(3):
        expected_z, expected_post, expected_blank, expected_best = brute_force_with_no_word(
            scores[b], no_word[b], frame_mask[b], word_mask[b])
        assert torch.allclose(log_z[b], expected_z)
        assert torch.allclose(post[b], expected_post, atol=1e-10)
        assert torch.allclose(blank[b], expected_blank, atol=1e-10)
        assert torch.equal(best[b], expected_best)
    torch.testing.assert_close((post.sum(2) + blank)[frame_mask], torch.ones(int(frame_mask.sum()), dtype=torch.float64))
    # the gradient of log Z is the posterior, for the words and for the no-word state
    scores.requires_grad_(True)
    no_word.requires_grad_(True)
    grads = torch.autograd.grad(monotone.log_partition(scores, frame_mask, word_mask, no_word).sum(), (scores, no_word))
    torch.testing.assert_close(grads[0], post)
    torch.testing.assert_close(grads[1], blank)
    # a no-word state that can never win changes nothing
    never = monotone.posterior(scores.detach(), frame_mask, word_mask, torch.full_like(no_word, -1e3))
    torch.testing.assert_close(never[0], monotone.posterior(scores.detach(), frame_mask, word_mask))


def test_gradient_of_log_partition_is_the_posterior():
    scores = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: monotone.log_partition(s), (scores,))
    grad, = torch.autograd.grad(monotone.log_partition(scores).sum(), scores)
    assert torch.allclose(grad, monotone.posterior(scores.detach()))


def chain_inputs(seed, dtype, no_word, batch=6, frames=60, words=12):
    """Packed chain scores, frame mask and chain of a batch with padding anywhere (as log_partition builds them)."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(batch, frames, words, generator=generator, dtype=dtype).log_softmax(1) * 3
    frame_mask = torch.rand(batch, frames, generator=generator) > 0.2
    word_mask = torch.rand(batch, words, generator=generator) > 0.3
    word_mask[:, 0] = True
    blank = torch.randn(batch, frames, generator=generator, dtype=dtype) if no_word else None
    frame_mask, word_mask, order = monotone._masks(scores, frame_mask, word_mask)
    extended, chain = monotone._chain(monotone._pack_words(scores, order), word_mask, blank)
    return extended, frame_mask, chain


@pytest.mark.parametrize("no_word", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_recursions_equal_the_pytorch_loops(dtype, no_word):
    if kernels.load("monotone") is None:
        pytest.skip("no working C++ compiler here")
    scores, frame_mask, chain = chain_inputs(3, dtype, no_word)
    alpha, expected_alpha = monotone._forward(scores, frame_mask, chain), monotone._forward_loop(scores, frame_mask, chain)
    real = chain.states[:, None, :].expand_as(alpha)
    tolerance = dict(rtol=1e-12, atol=1e-9) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(alpha[real], expected_alpha[real], **tolerance)
    log_z = monotone._finish(alpha[:, -1], chain)
    post = monotone._posterior(scores, frame_mask, chain, alpha, log_z)
    expected = monotone._posterior_loop(scores, frame_mask, chain, expected_alpha, monotone._finish(expected_alpha[:, -1], chain))
    torch.testing.assert_close(post, expected, rtol=0, atol=1e-10 if dtype == torch.float64 else 1e-4)
    assert (post[~frame_mask] == 0).all() and (post.masked_select(~real) == 0).all(), "padding and unreal states hold 0"
    # each batch item is one task: the tables do not depend on the thread count
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = monotone._forward(scores, frame_mask, chain), monotone._posterior(scores, frame_mask, chain, alpha, log_z)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], alpha) and torch.equal(one[1], post)


def test_monotone_recursions_fall_back_to_the_loops_with_one_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("ALIGNLIB_CACHE", str(tmp_path / "cache"))
    kernels.load.cache_clear()
    scores, frame_mask, chain = chain_inputs(4, torch.float64, no_word=True, frames=20, words=5)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            alpha = monotone._forward(scores, frame_mask, chain)
            post = monotone._posterior(scores, frame_mask, chain, alpha, monotone._finish(alpha[:, -1], chain))
    finally:
        kernels.load.cache_clear()
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == [
        f"alignlib: the C++ kernel 'monotone' is unavailable, using the pure-PyTorch fallback: "
        f"no C++ compiler found ({tmp_path / 'no-such-compiler'}; set CXX)"]
    assert torch.equal(alpha, monotone._forward_loop(scores, frame_mask, chain))
    assert torch.equal(post, monotone._posterior_loop(scores, frame_mask, chain, alpha, monotone._finish(alpha[:, -1], chain)))


def test_emission_scores_normalise_the_chosen_axis():
    similarity = torch.randn(2, 7, 4)
    frame_mask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
    word_mask = torch.tensor([[True] * 4, [True, True, True, False]])
    words = monotone.emission_scores(similarity, frame_mask, word_mask, "words").exp()
    frames = monotone.emission_scores(similarity, frame_mask, word_mask, "frames").exp()
    assert torch.allclose((words * frame_mask[:, :, None]).sum(1)[word_mask], torch.ones(7))
    assert torch.allclose((frames * word_mask[:, None, :]).sum(2)[frame_mask], torch.ones(12))
    with pytest.raises(ValueError, match="normalise"):
        monotone.emission_scores(similarity, normalise="rows")


def test_too_few_frames_is_a_clear_error():
    with pytest.raises(ValueError, match="as many real frames as words; batch item"):
        monotone.posterior(torch.randn(1, 3, 4))


def test_monotone_plan_method_sends_each_frame_its_mass_forward_in_time():
    torch.manual_seed(0)
    words = torch.randn(2, 5, 6)
    truth = torch.tensor([[0, 0, 1, 1, 1, 2, 3, 3, 4, 4], [0, 1, 1, 2, 2, 3, 3, 4, 4, 4]])
    frames = words.gather(1, truth[:, :, None].expand(-1, -1, 6)) + 0.05 * torch.randn(2, 10, 6)
    plan = ot.plan(frames, words, method="monotone")
    assert torch.allclose(plan.sum(2), torch.full((2, 10), 0.1), atol=1e-5)
    assert torch.equal(plan.argmax(2), truth)
    assert (plan.argmax(2).diff(dim=1) >= 0).all()


def test_oracle_and_shuffled_plans_from_a_table():
    x, y = torch.randn(2, 6, 3), torch.randn(2, 4, 3)
    y_mask = torch.tensor([[True, True, True, True], [True, False, True, True]])  # padding inside the words
    truth = torch.tensor([[0, 0, 1, 2, 3, -1], [0, 0, 2, 2, 3, 3]])
    x_mask = truth >= 0
    oracle = ot.plan(x, y, x_mask, y_mask, method="oracle", truth=truth)
    assert torch.allclose(oracle.sum((1, 2)), torch.ones(2))
    assert torch.equal(oracle.argmax(2)[x_mask], truth[x_mask])
    shuffled = ot.plan(x, y, x_mask, y_mask, method="shuffled", truth=truth)
    real_words = [[0, 1, 2, 3], [0, 2, 3]]
    for b in range(2):  # a loop: rank r of W real words -> rank (r + W // 2) % W
        ranks = {w: r for r, w in enumerate(real_words[b])}
        for i in range(6):
            if x_mask[b, i]:
                w = real_words[b][(ranks[int(truth[b, i])] + len(real_words[b]) // 2) % len(real_words[b])]
                assert shuffled[b, i].argmax() == w and shuffled[b, i, w] > 0
    with pytest.raises(ValueError, match="padded word"):
        ot.plan(x, y, x_mask, y_mask, method="oracle", truth=torch.tensor([[0, 0, 1, 2, 3, -1], [1, 1, 2, 2, 3, 3]]))


def test_the_aligner_learns_the_words_without_the_tables():
    """Trained by its own likelihood on the tiny sample's training clips, the aligner's plan finds
    the true word of far more test frames than the proportional-time guess."""
    data = load_mmsa(SAMPLE)
    torch.manual_seed(0)
    aligner = monotone.MonotoneAligner(data.dims["vision"], data.dims["text"])
    optimiser = torch.optim.Adam(aligner.parameters(), lr=3e-3)
    train = collate([MMSADataset(data.splits["train"])[i] for i in range(96)])
    for _ in range(60):
        _, loss = aligner(train.features["vision"], train.features["text"], train.masks["vision"], train.masks["text"])
        optimiser.zero_grad()
        loss.mean().backward()
        optimiser.step()
    test = collate([MMSADataset(data.splits["test"], alignment=True)[i] for i in range(32)])
    with torch.no_grad():
        plan, _ = aligner(test.features["vision"], test.features["text"], test.masks["vision"], test.masks["text"])
    guess = {"learned": plan.argmax(2),
             "proportional": ot.plan(test.features["vision"], test.features["vision"][:, :16], test.masks["vision"],
                                     test.masks["text"], method="proportional").argmax(2)}  # reads no feature
    truth, mask = test.alignment["vision"], test.masks["vision"]
    accuracy = {k: ((g == truth) & mask).sum().item() / mask.sum().item() for k, g in guess.items()}
    assert accuracy["learned"] > 0.7 > accuracy["proportional"] + 0.2, accuracy


def test_viterbi_table_is_the_best_prefix_score_and_its_pointer_the_best_way_in():
    """delta[i, j] = the best score over the monotone prefixes of frames 0..i that start on word 0 and end
    on word j (enumerated); advanced[i, j] says whether the best such prefix was on word j - 1 at frame i - 1."""
    scores = torch.randn(1, 7, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    delta, advanced = monotone.viterbi(scores)
    for i in range(7):
        prefixes = [p for p in itertools.product(range(4), repeat=i + 1)
                    if p[0] == 0 and all(b - a in (0, 1) for a, b in zip(p, p[1:]))]
        for j in range(4):
            ending = [p for p in prefixes if p[-1] == j]
            if not ending:
                continue
            totals = [sum(scores[0, f, w].item() for f, w in enumerate(p)) for p in ending]
            assert delta[0, i, j].item() == pytest.approx(max(totals), abs=1e-12)
            if i > 0:
                assert advanced[0, i, j].item() == (ending[int(np.argmax(totals))][-2] == j - 1)


def test_the_aligner_normalises_its_emissions_over_the_chosen_axis():
    x, y = torch.randn(2, 6, 3), torch.randn(2, 4, 5)
    x_mask, y_mask = torch.ones(2, 6, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)
    torch.manual_seed(0)
    words = monotone.MonotoneAligner(3, 5).scores(x, y, x_mask, y_mask).exp()
    torch.manual_seed(0)
    frames = monotone.MonotoneAligner(3, 5, normalise="frames").scores(x, y, x_mask, y_mask).exp()
    assert torch.allclose(words.sum(1), torch.ones(2, 4)) and torch.allclose(frames.sum(2), torch.ones(2, 6))
    with pytest.raises(ValueError, match="normalise"):
        monotone.MonotoneAligner(3, 5, normalise="rows")


def test_the_aligner_with_a_no_word_state_finds_the_pauses(tmp_path):
    """On clips with 30 % pause frames, the aligner with the "no word" state learns which frames are
    pauses (F1 against the tables) and still finds the words of the others; without it, every frame
    is on a word."""
    from alignlib import analysis
    from alignlib.data import synthetic

    data = load_mmsa(synthetic.write(tmp_path / "paused.pkl", *synthetic.generate("tiny", 0, pause=0.3)))
    train = collate([MMSADataset(data.splits["train"])[i] for i in range(64)])
    test = collate([MMSADataset(data.splits["test"], alignment=True)[i] for i in range(32)])
    found = {}
    for no_word in (False, True):
        torch.manual_seed(0)
        aligner = monotone.MonotoneAligner(data.dims["vision"], data.dims["text"], no_word=no_word)
        optimiser = torch.optim.Adam(aligner.parameters(), lr=3e-3)
        for _ in range(40):
            _, loss = aligner(train.features["vision"], train.features["text"], train.masks["vision"], train.masks["text"])
            optimiser.zero_grad()
            loss.mean().backward()
            optimiser.step()
        with torch.no_grad():
            plan, _ = aligner(test.features["vision"], test.features["text"], test.masks["vision"], test.masks["text"])
        guess, truth, mask = ot.frame_words(plan, test.masks["vision"]), test.alignment["vision"], test.masks["vision"]
        found[no_word] = analysis.frame_accuracy(guess, truth, mask), analysis.pause_detection(guess, truth, mask)
    assert found[True][0] > 0.7 and found[True][1]["f1"] > 0.8, found
    assert found[False][1]["recall"] == 0.0, found
