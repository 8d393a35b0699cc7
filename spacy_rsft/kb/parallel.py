"""`build-kb --engine ray`: entity vectors encoded on a Ray Data actor pool.

The texts are cut into chunks of whole batches, at the same batch boundaries as the local
build, and each actor encodes its chunks batch by batch: the same batches give the same
vectors, so the KB is the same as the local build's.
"""
from typing import Dict, List, Optional

import numpy

from ..scale.ray_engine import RayOptions, actor_map, ray_session, set_threads

BATCHES_PER_CHUNK = 8  # a chunk is one task: small enough to spread, big enough to amortize


class RayEntityEncoder:
    """A Ray Data actor: loads the transformer once, encodes the chunks it is given."""

    def __init__(self, model_name: str, batch_size: int, threads: int) -> None:
        from .builder import EntityEncoder

        set_threads(threads)
        self.encoder, self.batch_size = EntityEncoder(model_name), batch_size

    def __call__(self, batch: Dict) -> Dict:
        vectors = [self.encoder.encode_batches(list(texts), self.batch_size) for texts in batch["texts"]]
        return {"index": batch["index"], "vectors": [v.tobytes() for v in vectors], "rows": [len(v) for v in vectors]}


def encode_texts_ray(texts: List[str], model_name: str, batch_size: int,
                     options: Optional[RayOptions] = None, progress: bool = True) -> numpy.ndarray:
    from tqdm import tqdm

    options = options or RayOptions()
    size = batch_size * BATCHES_PER_CHUNK
    items = [{"index": i, "texts": texts[start : start + size]} for i, start in enumerate(range(0, len(texts), size))]
    chunks: Dict[int, numpy.ndarray] = {}
    with ray_session(options.address) as ray, tqdm(total=len(texts), disable=not progress, desc="Encoding entities") as bar:
        kwargs = {"model_name": model_name, "batch_size": batch_size}
        for row in actor_map(ray, items, RayEntityEncoder, kwargs, options):
            chunks[int(row["index"])] = numpy.frombuffer(row["vectors"], dtype="float32").reshape(int(row["rows"]), -1)
            bar.update(int(row["rows"]))
    return numpy.concatenate([chunks[i] for i in range(len(items))])
