"""Developer tools: the demo and the locator of the shared dataset and weights."""
