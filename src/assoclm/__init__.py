"""assoclm: associative-memory language models (delta-rule memories, equilibrium Hopfield
models, oscillator MLPs) and the baselines and benchmarks that judge them."""

__version__ = "0.1.0"
