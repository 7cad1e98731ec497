"""The import pipeline: feed sources, producers, a bounded queue, workers, and where every record went."""
