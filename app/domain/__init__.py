"""Pure domain rules of trainyard: states, transitions, checkpoints, formatting. No I/O."""
