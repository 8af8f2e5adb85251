"""Task families; each is an episode source whose episodes are a pure function of (split, seed, index)."""
