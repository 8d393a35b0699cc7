"""The rejection sampler itself: acceptance probabilities from losses and labels, and the
seeded accept/reject draw. Pure numpy, no spaCy, so its statistics can be tested alone.

One epoch is one sweep of the proposal: every example i is proposed once and accepted with
probability

    a_i = max(min_accept, exp(-epsilon) * w_i / max_j w_j)

for the target distribution p_i ∝ w_i (envelope M = max_j w_j). The weights of the targets:

    uniform   w_i = 1
    hard      w_i = exp(+r_i / T)   focus on what the model still gets wrong
    denoise   w_i = exp(-s_i / T)   reject examples the model disagrees with (likely noise),
                                    s_i = max(0, r_i - q) / (1 - q), q = denoise_quantile
    balanced  w_i = prod over the labels l of example i of (max_l' n_l' / n_l) ** alpha

r_i is the percentile rank of the example's latest loss among the scored examples (in
[0, 1], ties share a rank), so the temperature T does not depend on the loss scale and
enormous or infinite losses cannot swamp the rest. Targets combine by multiplying weights
("denoise+balanced").

Why `denoise` only looks above the quantile q (default 0.7): with the seed's exp(-r_i / T)
over the whole rank range the median example is accepted with exp(-0.5 / T) = 0.37 at
T = 0.5, so the target throws away most of the clean data and keeps the easiest examples
(often those with the fewest entities). Label noise lives in the loss tail; below q every
example is kept, above it acceptance falls to exp(-1 / T) at the highest loss. q = 0 gives
the seed's formula back. Examples without a loss yet are accepted (a_i = 1), and every example
is accepted during the `warmup_epochs` first epochs.

`denoise` aimed at an expected noise rate (`noise_rate`, the co-teaching schedule of Han et al.
2018): instead of a fixed q, the k-th sampled epoch after warm-up uses q_k = 1 - rho_k with
rho_k = noise_rate * min(1, k / ramp_epochs), so rejection starts gently, while the model still
fits the clean majority first, and grows to the expected share of noisy units. `noise_rate =
"auto"` estimates it every epoch as the share of scored units the model currently disagrees
with (mean token loss above ln 2: the gold tag gets less than even odds). That share falls
as the model memorizes its noisy labels, while the noise does not: with
`noise_rate_estimate = "max"` the rate is the highest estimate from the second sampled epoch
on (the first one's losses come from a model still learning the clean majority, so they are
left out of the maximum), per group.

`noise_rate = "mixture"` estimates the rate instead from the shape of the loss distribution,
as DivideMix (Li et al. 2020) and Arazo et al. (2019) split clean from noisy samples: a
two-component Gaussian mixture is fitted to the log unit losses, and the rate is the share
of units above the point where the high-loss component becomes the more likely (0 when the
two are not clearly apart: one bell of losses, nothing to reject). The ln 2 cut counts only the noisy units
the model still openly disagrees with, so it undercounts once the model starts to fit its
noisy labels (on NoiseBench's distant labels, 24% estimated at the second sampled epoch for
47% noisy sentences); their losses are still far above the clean units' on a log scale,
where the mixture finds them (36% there, 25% for crowd's 23%). It does not tell noise from
difficulty: on clean labels easy and hard units can make two groups as well.

`random` is the control of `denoise`: every unit gets the acceptance that `denoise` with the
same settings gives on average in its group, so it trains on as many units as `denoise` does,
chosen blindly. What `denoise` gains over `random` is what its choice of units is worth.

`groups` ranks units of different kinds apart (the reader passes entity spans and non-entity
tokens as two groups), each group with its own ranks and envelope.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import numpy

from ..errors import Errors

TARGETS = ("uniform", "hard", "denoise", "balanced", "random")
NOISE_RATE_ESTIMATES = ("latest", "max")
# noise_rate values that estimate the rate each epoch: the ln 2 cut, or a two-component mixture
NOISE_RATE_ESTIMATORS = ("auto", "mixture")
MIXTURE_SAMPLE = 20000  # at most about this many losses are fitted (a strided sample)
MIXTURE_MIN_UNITS = 20  # fewer scored units: the ln 2 cut
# Ashman's D between the components below which they count as one mode split in two
# (D > 2 is the usual criterion of a clean separation, Ashman et al. 1994; the sentence
# losses of NoiseBench's noisy label sets gave 2.3-5.7)
MIXTURE_SEPARATION = 2.0
LOSS_TARGETS = ("hard", "denoise", "random")
# A unit whose mean token loss is above ln 2 gets its gold tags with less than even odds.
DISAGREEMENT_LOSS = float(numpy.log(2.0))


def estimate_noise_rate(losses: numpy.ndarray) -> float:
    """Share of the scored units the model disagrees with: unit loss above ln 2 (with
    `unit_loss = "mean"` the mean token loss; with "max", some counted token gets its gold
    tag with less than even odds).

    losses (ndarray): Unit losses, NaN where unknown.
    RETURNS (float): The estimate in [0, 1] (0 when nothing is scored).
    """
    known = losses[~numpy.isnan(losses)]
    return float((known > DISAGREEMENT_LOSS).mean()) if known.size else 0.0


def estimate_noise_rate_by_mixture(losses: numpy.ndarray, iterations: int = 100) -> float:
    """Share of the scored units above the point where a two-component Gaussian mixture,
    fitted by EM to their log losses, starts to prefer its high-loss component.

    Any two-component fit splits a single bell of log losses, so the components must be
    clearly apart (Ashman's D >= MIXTURE_SEPARATION) for the high one to count as noise;
    otherwise the estimate is 0. With fewer than MIXTURE_MIN_UNITS scored units it is the
    ln 2 cut (`estimate_noise_rate`). The guard does not tell noise from difficulty: easy
    and hard units also make two clear groups (on NoiseBench's clean labels, with sentences
    judged by their largest outside-token loss, the mixture put 18-20% of them in the high
    group at sampled epochs 2-4).

    losses (ndarray): Unit losses, NaN where unknown.
    iterations (int): EM iterations (the fit is deterministic).
    RETURNS (float): The estimate in [0, 0.5].
    """
    known = losses[~numpy.isnan(losses)]
    if known.size < MIXTURE_MIN_UNITS or numpy.unique(known).size < 2:
        return min(0.5, estimate_noise_rate(losses))
    # the log spreads out the clean bulk near 0 and keeps a few huge losses from pulling the
    # high component's mean; the offset shrinks the spread of the losses below 1e-4 (gold
    # tag at p > 0.9999), whose differences are float noise (without it, on NoiseBench the
    # low component fitted that noise and the estimate fell with training, as ln 2's does)
    all_x = numpy.log(numpy.clip(known, 0.0, 1e6) + 1e-4)
    # a strided sample of the sorted losses keeps their shape and the fit's cost bounded
    # (token units number in the hundreds of thousands)
    x = numpy.sort(all_x)[:: max(1, all_x.size // MIXTURE_SAMPLE)]
    weights, means, sds = _fit_two_gaussians(x, iterations)
    low, high = int(numpy.argmin(means)), int(numpy.argmax(means))
    separation = numpy.sqrt(2.0) * (means[high] - means[low]) / numpy.sqrt(sds[low] ** 2 + sds[high] ** 2)
    if not separation >= MIXTURE_SEPARATION:
        return 0.0
    # units above the first point between the means where the high component is the more
    # likely (with unequal widths the wider one also wins the far tail, which a rank-based
    # rejection would count as noise anyway)
    grid = numpy.linspace(means[low], means[high], 513)
    log_p = _log_densities(grid, weights, means, sds)
    prefers_high = numpy.flatnonzero(log_p[:, high] > log_p[:, low])
    cut = grid[prefers_high[0]] if prefers_high.size else means[high]
    # more than half would call the majority noisy: a loss rank cannot tell the clean units
    # from the noisy ones then, so the estimate stops at one half
    return min(0.5, float((all_x >= cut).mean()))


def _log_densities(x: numpy.ndarray, weights: numpy.ndarray, means: numpy.ndarray, sds: numpy.ndarray) -> numpy.ndarray:
    """log(weight_k * N(x | mean_k, sd_k)) up to a shared constant, one column per component."""
    return -0.5 * ((x[:, None] - means) / sds) ** 2 - numpy.log(sds) + numpy.log(weights)


def _fit_two_gaussians(x: numpy.ndarray, iterations: int):
    """EM for a 1-D two-component Gaussian mixture, started from the 25th and 90th
    percentiles (the top of the values when 90% of them tie). RETURNS (weights, means, sds)."""
    low, high = numpy.percentile(x, [25.0, 90.0])
    if high <= low:
        high = x.max()
    means = numpy.asarray([low, high])
    # a floor on the deviation keeps a component from collapsing onto tied losses
    floor = max(1e-3, 1e-3 * float(numpy.ptp(x)))
    sds = numpy.full(2, max(float(x.std()), floor))
    weights = numpy.full(2, 0.5)
    for _ in range(iterations):
        log_p = _log_densities(x, weights, means, sds)
        log_p -= log_p.max(axis=1, keepdims=True)
        resp = numpy.exp(log_p)
        resp /= resp.sum(axis=1, keepdims=True)
        mass = resp.sum(axis=0)
        alive = mass > 1e-9  # an emptied component keeps its last parameters
        weights = numpy.maximum(mass / x.size, 1e-6)
        safe_mass = numpy.where(alive, mass, 1.0)
        new_means = (resp * x[:, None]).sum(axis=0) / safe_mass
        new_sds = numpy.sqrt((resp * (x[:, None] - new_means) ** 2).sum(axis=0) / safe_mass)
        means = numpy.where(alive, new_means, means)
        sds = numpy.where(alive, numpy.maximum(new_sds, floor), sds)
    return weights, means, sds


def parse_target(target: str) -> List[str]:
    """Split and check a target such as "denoise+balanced".

    target (str): One target or several joined with "+".
    RETURNS (List[str]): The component targets.
    """
    parts = [part.strip() for part in str(target).split("+")]
    expected = " | ".join(TARGETS) + ", or a product such as 'denoise+balanced'"
    if not parts or any(part not in TARGETS for part in parts):
        raise ValueError(Errors.E101.format(setting="target", value=target, expected=expected))
    if "random" in parts and len(set(parts) & set(LOSS_TARGETS)) > 1:
        expected = "'random' alone or with 'balanced' (it is the control of 'denoise', not an addition to it)"
        raise ValueError(Errors.E101.format(setting="target", value=target, expected=expected))
    return parts


def percentile_ranks(losses: numpy.ndarray) -> numpy.ndarray:
    """Percentile rank in [0, 1] of each finite-or-infinite loss; NaN stays NaN.

    losses (ndarray): One loss per example, NaN where unknown.
    RETURNS (ndarray): Ranks; tied losses share their average rank.
    """
    ranks = numpy.full(losses.shape, numpy.nan)
    known = ~numpy.isnan(losses)
    values = losses[known]
    if values.size == 0:
        return ranks
    if values.size == 1:
        ranks[known] = 0.5
        return ranks
    ordered = numpy.sort(values)
    low = numpy.searchsorted(ordered, values, side="left")
    high = numpy.searchsorted(ordered, values, side="right") - 1
    ranks[known] = (low + high) / 2.0 / (values.size - 1)
    return ranks


def label_log_weights(label_sets: Sequence[Sequence[str]], alpha: float) -> numpy.ndarray:
    """log w_i of the `balanced` target: rarer labels weigh more.

    label_sets (Sequence[Sequence[str]]): The distinct labels of each example.
    alpha (float): Strength of the rebalancing (0 = none, 1 = inverse frequency).
    RETURNS (ndarray): One log-weight per example (0 for examples without labels).
    """
    counts: Dict[str, int] = {}
    for labels in label_sets:
        for label in set(labels):
            counts[label] = counts.get(label, 0) + 1
    if not counts:
        return numpy.zeros((len(label_sets),))
    most = max(counts.values())
    log_inv = {label: numpy.log(most / n) for label, n in counts.items()}
    return numpy.asarray(
        [alpha * sum(log_inv[label] for label in set(labels)) for labels in label_sets],
        dtype="float64",
    )


@dataclass
class Draw:
    """The outcome of one epoch's sampling."""

    acceptance: numpy.ndarray  # a_i for every proposed example
    accepted: numpy.ndarray  # indices of the accepted examples, in training order
    warmup: bool


class RejectionSampler:
    """Loss-based rejection sampling of training examples, one draw per epoch."""

    def __init__(
        self,
        target: str = "uniform",
        *,
        temperature: float = 0.5,
        epsilon: float = 0.0,
        min_accept: float = 0.05,
        warmup_epochs: int = 1,
        alpha: float = 1.0,
        denoise_quantile: float = 0.7,
        noise_rate: Union[float, str, None] = None,
        ramp_epochs: int = 1,
        noise_rate_estimate: str = "latest",
        seed: int = 0,
    ) -> None:
        """Set up the sampler; every parameter is checked here, with a clear error.

        target (str): "uniform", "hard", "denoise", "balanced" or a product like
            "denoise+balanced".
        temperature (float): T > 0; lower is more selective.
        epsilon (float): Envelope slack >= 0: acceptances scale by exp(-epsilon), which
            sets the expected epoch size.
        min_accept (float): Acceptance floor in (0, 1], so no example starves.
        warmup_epochs (int): Epochs that accept everything before sampling starts.
        alpha (float): Strength of the `balanced` target, >= 0.
        denoise_quantile (float): Loss rank in [0, 1) below which `denoise` keeps every
            example; 0 is the seed's exp(-r / T) over the whole range.
        noise_rate (Union[float, str, None]): Expected share of noisy units in [0, 1), or
            estimated each epoch: "auto" (units with a loss above ln 2) or "mixture" (units
            in the high-loss component of a two-component mixture of log losses); `denoise`
            then rejects from the top noise_rate of the loss ranks instead of above
            denoise_quantile. None: the fixed quantile.
        ramp_epochs (int): Sampled epochs over which the noise_rate form ramps up to
            noise_rate (1: at once).
        noise_rate_estimate (str): With an estimated noise_rate: "latest" (this epoch's estimate)
            or "max" (the highest since the second sampled epoch, per group).
        seed (int): Seed; the draw of epoch k depends only on (seed, k) and a.
        """
        self.targets = parse_target(target)
        self.target = "+".join(self.targets)
        _check(temperature > 0, "temperature", temperature, "a number > 0")
        _check(epsilon >= 0, "epsilon", epsilon, "a number >= 0")
        _check(0 < min_accept <= 1, "min_accept", min_accept, "a number in (0, 1]")
        is_count = int(warmup_epochs) == warmup_epochs and warmup_epochs >= 0
        _check(is_count, "warmup_epochs", warmup_epochs, "an integer >= 0")
        _check(alpha >= 0, "alpha", alpha, "a number >= 0")
        _check(0 <= denoise_quantile < 1, "denoise_quantile", denoise_quantile, "a number in [0, 1)")
        self.temperature = float(temperature)
        self.epsilon = float(epsilon)
        self.min_accept = float(min_accept)
        self.warmup_epochs = int(warmup_epochs)
        self.alpha = float(alpha)
        self.denoise_quantile = float(denoise_quantile)
        estimated = isinstance(noise_rate, str) and noise_rate in NOISE_RATE_ESTIMATORS
        number = isinstance(noise_rate, (int, float)) and not isinstance(noise_rate, bool)
        valid_rate = noise_rate is None or estimated or (number and 0 <= noise_rate < 1)
        _check(valid_rate, "noise_rate", noise_rate, 'null, "auto", "mixture" or a number in [0, 1)')
        _check(int(ramp_epochs) == ramp_epochs and ramp_epochs >= 1, "ramp_epochs", ramp_epochs, "an integer >= 1")
        self.noise_rate = noise_rate if noise_rate is None or estimated else float(noise_rate)
        self.ramp_epochs = int(ramp_epochs)
        estimates = " | ".join(NOISE_RATE_ESTIMATES)
        _check(noise_rate_estimate in NOISE_RATE_ESTIMATES, "noise_rate_estimate", noise_rate_estimate, estimates)
        self.noise_rate_estimate = noise_rate_estimate
        # the highest noise-rate estimate so far, per group (noise_rate_estimate = "max")
        self.max_estimates: Dict[object, float] = {}
        self.seed = int(seed)
        # the quantile and noise-rate estimate of the last `acceptance` call (for the stats)
        self.last_quantiles: List[Optional[float]] = []

    @property
    def uses_losses(self) -> bool:
        return any(t in LOSS_TARGETS for t in self.targets)

    def acceptance(
        self,
        epoch: int,
        losses: numpy.ndarray,
        label_sets: Optional[Sequence[Sequence[str]]] = None,
        groups: Optional[numpy.ndarray] = None,
    ) -> numpy.ndarray:
        """Acceptance probability a_i of every example (or unit) for this epoch.

        epoch (int): 0-based epoch number.
        losses (ndarray): Latest loss per example, NaN where none is known yet.
        label_sets (Optional[Sequence[Sequence[str]]]): Labels per example (`balanced`).
        groups (Optional[ndarray]): A group id per example; each group is ranked on its
            own (e.g. entity spans apart from non-entity tokens).
        RETURNS (ndarray): a_i in [min_accept, 1].
        """
        losses = numpy.asarray(losses, dtype="float64")
        n = losses.shape[0]
        self.last_quantiles = []
        if epoch < self.warmup_epochs:
            return numpy.ones((n,))
        if groups is None:
            return self._group_acceptance(epoch, losses, label_sets)
        accept = numpy.ones((n,))
        for group in numpy.unique(groups):
            members = numpy.flatnonzero(groups == group)
            labels = None if label_sets is None else [label_sets[i] for i in members]
            accept[members] = self._group_acceptance(epoch, losses[members], labels, group=int(group))
        return accept

    def denoise_quantile_at(self, epoch: int, losses: numpy.ndarray, group: object = None) -> float:
        """The loss rank above which `denoise` rejects in this epoch (1: rejects nothing).

        epoch (int): 0-based epoch number (past warm-up).
        losses (ndarray): The losses of the group being ranked.
        group (object): The group's id, for the per-group maximum of "max" estimates.
        RETURNS (float): q in [0, 1].
        """
        if self.noise_rate is None:
            return self.denoise_quantile
        sampled = epoch - self.warmup_epochs + 1
        if self.noise_rate in NOISE_RATE_ESTIMATORS:
            estimate = estimate_noise_rate if self.noise_rate == "auto" else estimate_noise_rate_by_mixture
            rate = estimate(losses)
            if self.noise_rate_estimate == "max" and sampled >= 2:
                rate = max(rate, self.max_estimates.get(group, 0.0))
                self.max_estimates[group] = rate
        else:
            rate = float(self.noise_rate)
        return 1.0 - rate * min(1.0, sampled / self.ramp_epochs)

    def _group_acceptance(
        self, epoch: int, losses: numpy.ndarray, label_sets: Optional[Sequence[Sequence[str]]], group: object = None
    ) -> numpy.ndarray:
        n = losses.shape[0]
        log_w = numpy.zeros((n,))
        ranks = percentile_ranks(losses)
        unscored = numpy.isnan(ranks) if self.uses_losses else numpy.zeros((n,), dtype=bool)
        for target in self.targets:
            if target == "hard":
                log_w += numpy.nan_to_num(ranks) / self.temperature
            elif target in ("denoise", "random"):
                q = self.denoise_quantile_at(epoch, losses, group)
                self.last_quantiles.append(q)
                if q < 1.0:
                    tail = numpy.maximum(numpy.nan_to_num(ranks) - q, 0.0) / (1.0 - q)
                    log_w -= tail / self.temperature
            elif target == "balanced":
                if label_sets is None:
                    raise ValueError(Errors.E102)
                log_w += label_log_weights(label_sets, self.alpha)
        scored = ~unscored
        accept = numpy.ones((n,))
        if scored.any():
            envelope = log_w[scored].max()
            accept[scored] = numpy.exp(log_w[scored] - envelope - self.epsilon)
        accept = numpy.maximum(accept, self.min_accept)
        if "random" in self.targets and scored.any():
            accept[scored] = accept[scored].mean()  # the same rate, blind to the losses
        return accept

    def draw(self, epoch: int, acceptance: numpy.ndarray) -> Draw:
        """Accept each example with its probability and shuffle the accepted ones.

        epoch (int): 0-based epoch number (seeds this epoch's random stream).
        acceptance (ndarray): From `acceptance`.
        RETURNS (Draw): The accepted indices in training order.
        """
        rng = numpy.random.default_rng([self.seed, epoch])
        uniform = rng.random(acceptance.shape[0])
        accepted = numpy.flatnonzero(uniform < acceptance)
        if accepted.size == 0 and acceptance.size:
            # An empty epoch teaches nothing and would make spaCy spin: keep the most
            # acceptable example.
            accepted = numpy.asarray([int(numpy.argmax(acceptance))])
        rng.shuffle(accepted)
        return Draw(acceptance=acceptance, accepted=accepted, warmup=epoch < self.warmup_epochs)


def _check(ok: bool, setting: str, value, expected: str) -> None:
    if not ok:
        raise ValueError(Errors.E101.format(setting=setting, value=value, expected=expected))
