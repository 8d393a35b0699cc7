from .reader import RejectionSampledCorpus, create_rejection_sampled_corpus
from .sampler import RejectionSampler, percentile_ranks

__all__ = [
    "RejectionSampledCorpus",
    "RejectionSampler",
    "create_rejection_sampled_corpus",
    "percentile_ranks",
]
