"""Notes: templates as data, the drafter, and rendering."""
