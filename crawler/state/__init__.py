"""What a run remembers between invocations: store protocols, SQLite, the folder lock."""
