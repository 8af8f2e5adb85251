"""Same-different visual reasoning (Gupta et al. 2025): Puebla-Bowers shapes, SVRT #1, natural objects.

Every image is 128x128x3 uint8 on a white background with exactly two shapes; label 1 = same,
0 = different. Episodes are built by `episodes.SameDifferentEpisodes`.
"""
