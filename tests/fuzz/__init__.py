"""Property-based (Hypothesis), chaos (kill -9) and disk-fault tests: issue 12. `make test`
runs them with the small, fixed "ci" budget; `make fuzz` with the "fuzz" one."""
