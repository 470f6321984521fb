"""vision-qa: the command line and settings (the entry points)."""
