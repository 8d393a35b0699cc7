"""The rejection sampler alone: its acceptance probabilities and draws."""
import numpy
import pytest

from spacy_rsft.sampling.sampler import (
    RejectionSampler,
    label_log_weights,
    parse_target,
    percentile_ranks,
)

LOSSES = numpy.asarray([0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 0.3, 3.0])


def empirical_frequency(sampler, acceptance, n_epochs):
    counts = numpy.zeros_like(acceptance)
    for epoch in range(n_epochs):
        counts[sampler.draw(epoch, acceptance).accepted] += 1
    return counts / n_epochs


@pytest.mark.parametrize("target", ["hard", "denoise", "uniform"])
def test_empirical_acceptance_matches_a(target):
    # 4,000 epochs: the standard error of each frequency is at most
    # sqrt(0.25 / 4000) = 0.0079; 0.035 is over 4 standard errors, so with the fixed
    # seed this cannot fail by chance, but a wrong draw (e.g. a != frequency) would.
    sampler = RejectionSampler(target, temperature=0.5, min_accept=0.05, warmup_epochs=0, seed=3)
    acceptance = sampler.acceptance(5, LOSSES)
    frequency = empirical_frequency(sampler, acceptance, 4000)
    numpy.testing.assert_allclose(frequency, acceptance, atol=0.035)


def test_acceptance_formula():
    sampler = RejectionSampler("hard", temperature=0.5, min_accept=0.01, warmup_epochs=0)
    ranks = percentile_ranks(LOSSES)
    expected = numpy.maximum(numpy.exp((ranks - ranks.max()) / 0.5), 0.01)
    numpy.testing.assert_allclose(sampler.acceptance(0, LOSSES), expected)
    denoise = RejectionSampler("denoise", temperature=0.5, min_accept=0.01, warmup_epochs=0)
    a = denoise.acceptance(0, LOSSES)
    # Every example below the 0.7 loss quantile is kept; above it acceptance falls
    # strictly, to exp(-1 / T) at the highest loss.
    numpy.testing.assert_allclose(a[ranks <= 0.7], 1.0)
    tail = numpy.argsort(LOSSES)[ranks[numpy.argsort(LOSSES)] > 0.7]
    assert tail.size and numpy.all(numpy.diff(a[tail]) < 0)
    assert a.min() == pytest.approx(numpy.exp(-1 / 0.5))
    # denoise_quantile = 0 is the seed's exp(-r / T) over the whole range.
    seed_formula = RejectionSampler("denoise", temperature=0.5, min_accept=0.01, warmup_epochs=0, denoise_quantile=0)
    expected = numpy.maximum(numpy.exp(-(ranks - ranks.min()) / 0.5), 0.01)
    numpy.testing.assert_allclose(seed_formula.acceptance(0, LOSSES), expected)


def test_min_accept_holds():
    sampler = RejectionSampler("hard", temperature=0.01, min_accept=0.2, warmup_epochs=0)
    a = sampler.acceptance(0, LOSSES)
    assert a.min() == pytest.approx(0.2)
    assert a.max() == pytest.approx(1.0)


def test_uniform_accepts_everything():
    sampler = RejectionSampler("uniform", warmup_epochs=0)
    a = sampler.acceptance(3, LOSSES)
    assert numpy.all(a == 1.0)
    draw = sampler.draw(3, a)
    assert sorted(draw.accepted) == list(range(len(LOSSES)))


def test_epsilon_scales_expected_count():
    base = RejectionSampler("denoise", temperature=1.0, min_accept=1e-6, warmup_epochs=0)
    slack = RejectionSampler("denoise", temperature=1.0, epsilon=0.7, min_accept=1e-6, warmup_epochs=0)
    assert slack.acceptance(0, LOSSES).sum() == pytest.approx(
        numpy.exp(-0.7) * base.acceptance(0, LOSSES).sum()
    )
    uniform = RejectionSampler("uniform", epsilon=numpy.log(2), warmup_epochs=0)
    numpy.testing.assert_allclose(uniform.acceptance(0, LOSSES), 0.5)


def test_warmup_accepts_everything():
    sampler = RejectionSampler("hard", temperature=0.1, warmup_epochs=2)
    assert numpy.all(sampler.acceptance(0, LOSSES) == 1.0)
    assert numpy.all(sampler.acceptance(1, LOSSES) == 1.0)
    assert sampler.acceptance(2, LOSSES).min() < 1.0


def test_unscored_examples_are_accepted():
    losses = LOSSES.copy()
    losses[[1, 4]] = numpy.nan
    sampler = RejectionSampler("denoise", temperature=0.1, warmup_epochs=0)
    a = sampler.acceptance(0, losses)
    assert a[1] == 1.0 and a[4] == 1.0


@pytest.mark.parametrize(
    "losses",
    [
        numpy.full(6, 2.0),
        numpy.zeros(6),
        numpy.asarray([1e30, 1e300, numpy.inf, 1.0, 0.0, 5.0]),
        numpy.full(6, numpy.nan),
    ],
    ids=["equal", "zero", "enormous", "missing"],
)
@pytest.mark.parametrize("target", ["hard", "denoise", "denoise+balanced"])
def test_degenerate_losses_stay_well_defined(losses, target):
    sampler = RejectionSampler(target, min_accept=0.05, warmup_epochs=0)
    labels = [["PER"], ["LOC"], [], ["PER"], ["MISC"], ["PER", "LOC"]]
    a = sampler.acceptance(0, losses, labels)
    assert numpy.all(numpy.isfinite(a))
    assert numpy.all((a >= 0.05) & (a <= 1.0))
    assert sampler.draw(0, a).accepted.size >= 1


def test_balanced_favours_rare_labels():
    labels = [["PER"]] * 8 + [["MISC"]] + [[]]
    sampler = RejectionSampler("balanced", alpha=1.0, min_accept=0.01, warmup_epochs=0)
    a = sampler.acceptance(0, numpy.full(10, numpy.nan), labels)
    assert a[8] == pytest.approx(1.0)
    assert a[0] == pytest.approx(1 / 8)
    assert a[9] == pytest.approx(1 / 8)
    numpy.testing.assert_allclose(label_log_weights([["A"], ["A", "B"]], 1.0), [0.0, numpy.log(2)])


def test_same_seed_same_draw():
    a = RejectionSampler("hard", warmup_epochs=0).acceptance(0, LOSSES)
    first = RejectionSampler("hard", seed=7).draw(4, a).accepted
    again = RejectionSampler("hard", seed=7).draw(4, a).accepted
    other = RejectionSampler("hard", seed=8).draw(4, a).accepted
    assert 1 < len(first) < len(LOSSES)
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()


def test_percentile_ranks():
    numpy.testing.assert_allclose(percentile_ranks(numpy.asarray([3.0, 1.0, 2.0])), [1.0, 0.0, 0.5])
    numpy.testing.assert_allclose(percentile_ranks(numpy.asarray([1.0, 1.0])), [0.5, 0.5])
    assert numpy.isnan(percentile_ranks(numpy.asarray([numpy.nan, 1.0]))[0])


@pytest.mark.parametrize(
    "kwargs,setting",
    [
        ({"target": "hardest"}, "target"),
        ({"target": "hard+nope"}, "target"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"min_accept": 0.0}, "min_accept"),
        ({"min_accept": 1.5}, "min_accept"),
        ({"epsilon": -0.1}, "epsilon"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"denoise_quantile": 1.0}, "denoise_quantile"),
        ({"denoise_quantile": -0.1}, "denoise_quantile"),
    ],
)
def test_bad_settings_name_the_parameter(kwargs, setting):
    target = kwargs.pop("target", "hard")
    with pytest.raises(ValueError, match=f"`{setting}`"):
        RejectionSampler(target, **kwargs)


def test_parse_target():
    assert parse_target("denoise+balanced") == ["denoise", "balanced"]
