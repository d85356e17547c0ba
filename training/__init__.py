"""Training on a workstation: FER2013-style data, the seed and edge CNNs, train, tune and evaluate."""
