"""The command-line interface (``kdtheory ...``), one module per group of commands."""
