from .builder import build_kb
from .candidates import CandidateGenerator, make_candidate_generator, normalize_alias

__all__ = ["build_kb", "CandidateGenerator", "make_candidate_generator", "normalize_alias"]
