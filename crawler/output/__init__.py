"""What lands on disk: layout, atomic storage, save-mode sinks, the manifest."""
