"""The state journal (SQLite) between runs: what each tenant already holds, resume, and mirror mode."""
