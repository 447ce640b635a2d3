"""Operations: pure functions from vectors (+ item metadata) to a table of results."""
