"""Every figure of the lab: each function draws, saves to the given path (if any) and returns the figure."""
