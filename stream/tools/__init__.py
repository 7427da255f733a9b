"""Commands around the pipeline, not part of it: the demo, streaming evaluation, benchmarks, the
fuzzer and the soak run."""
