"""Where a feed's records come from: files, stdin and URLs (``feed``), a rejects file's retryable
lines (``retry``); each builds ``pipeline.job.FeedJob``s for ``run_import``."""
