"""Multi-stage supply-chain model: network, scenarios, propagation, Monte Carlo ensemble."""
