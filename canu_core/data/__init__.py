"""Datasets: real readers, the synthetic world, transforms, samplers."""
