"""A run of several destinations: each feed read once and sent to every destination it goes to."""
