"""What a run did: counts that add up, the exit-code policy, and the summary rendered for a terminal."""
