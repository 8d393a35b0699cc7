from .reader import RejectionSampledCorpus
from .sampler import RejectionSampler, percentile_ranks

__all__ = [
    "RejectionSampledCorpus",
    "RejectionSampler",
    "percentile_ranks",
]
