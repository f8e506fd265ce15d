"""Flask plumbing shared by every context's blueprint: problems, validation, auth, request ids."""
