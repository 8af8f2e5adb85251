"""Benchmarks B1-B7 of docs/benchmarks.md: the project's learners timed against peers in one process.

Each case builds its implementations on the same tensors, checks a correctness gate before its
timings count, then times them interleaved (so load from other processes hits all of them alike);
speed targets are judged on those timings and never void them.
"""
