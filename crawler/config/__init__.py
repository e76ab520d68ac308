"""Job file -> frozen specs: YAML read with lines kept, every key checked, defaults applied."""
