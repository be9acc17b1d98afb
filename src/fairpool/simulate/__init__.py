"""The trace-driven simulator: the production scheduling core on a virtual clock, trace loaders,
policies to compare, metrics and plots (``fairpool simulate``)."""
