import numpy as np


def test_examples_embed_once(examples_embeddings):
    emb = examples_embeddings
    assert emb.vectors.shape == (43, 1280)
    assert np.allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-2)
    assert emb.stats.encoded == 0 and emb.stats.cached == 43
