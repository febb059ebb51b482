"""Layer 5: command-line tools (training, rendering, evaluation, benchmarks, demo)."""
