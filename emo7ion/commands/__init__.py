"""Subcommands of ``emo7ion``: each module adds its parsers and imports its heavy code only when run."""
